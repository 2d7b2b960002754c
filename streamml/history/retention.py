"""Archive upkeep: snapshots of compacted topics and retention by hour partition."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from streamml.errors import ConfigError
from streamml.history.layout import (
    archive_files,
    hour_bucket,
    snapshot_dir,
    snapshots,
    topic_dir,
)
from streamml.history.parquet import ARCHIVE_SCHEMA, HOUR_MS, write_atomic

DAY_MS = 24 * HOUR_MS


def snapshot_topic(root: Path, topic: str) -> bool:
    """Write the latest value per key of an archived (compacted) topic; ``False`` if current.

    The snapshot is built from the archive files, so it covers exactly what is
    archived; it is named by the newest timestamp it includes, hence written
    once per state. Tombstoned keys are left out.
    """
    import duckdb

    files = archive_files(root, topic)
    if not files:
        return False
    glob = str(topic_dir(root, topic) / "date=*" / "hour=*" / "*.parquet")
    con = duckdb.connect()
    try:
        as_of = con.sql(
            "SELECT max(timestamp) FROM read_parquet($glob, hive_partitioning=false)",
            params={"glob": glob},
        ).fetchall()[0]
        as_of_ms = int(as_of[0]) if as_of and as_of[0] is not None else 0
        target = snapshot_dir(root, topic, as_of_ms)
        if target.exists():
            return False
        table = con.sql(
            """
            SELECT * EXCLUDE (rn) FROM (
              SELECT *, row_number() OVER (
                PARTITION BY coalesce(key, ''), key_bin ORDER BY timestamp DESC, "offset" DESC
              ) AS rn
              FROM read_parquet($glob, hive_partitioning=false)
            ) WHERE rn = 1 AND (value IS NOT NULL OR value_bin IS NOT NULL)
            ORDER BY "partition", "offset"
            """,
            params={"glob": glob},
        ).to_arrow_table()
    finally:
        con.close()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_atomic(table.cast(ARCHIVE_SCHEMA), tmp / "snapshot.parquet")
    os.replace(tmp, target)
    return True


def apply_retention(root: Path, days: int, now_ms: int, topics: Sequence[str] | None = None
                    ) -> int:
    """Delete hour partitions that ended more than ``days`` days before ``now_ms``.

    Empty date folders go too. Snapshots older than the cut-off are deleted
    except the newest one of each topic. Returns the number of hour folders removed.

    >>> import tempfile
    >>> from streamml.history.layout import hour_dir
    >>> root = Path(tempfile.mkdtemp())
    >>> old = hour_dir(root, "t", 0); old.mkdir(parents=True)
    >>> new = hour_dir(root, "t", 10 * DAY_MS); new.mkdir(parents=True)
    >>> apply_retention(root, 7, now_ms=10 * DAY_MS), old.exists(), new.exists()
    (1, False, True)
    """
    if days < 0:
        raise ConfigError("--retention-days must be >= 0")
    cutoff = now_ms - days * DAY_MS
    cut_date, cut_hour = hour_bucket(cutoff)
    removed = 0
    from streamml.history.layout import archived_topics

    for topic in topics if topics is not None else archived_topics(root):
        base = topic_dir(root, topic)
        for date_dir in sorted(base.glob("date=*")):
            date = date_dir.name.partition("=")[2]
            for hour in sorted(date_dir.glob("hour=*")):
                h = hour.name.partition("=")[2]
                if (date, h) < (cut_date, cut_hour):
                    shutil.rmtree(hour)
                    removed += 1
            if date_dir.is_dir() and not any(date_dir.iterdir()):
                date_dir.rmdir()
        snaps = snapshots(root, topic)
        for as_of, path in snaps[:-1]:
            if as_of < cutoff:
                shutil.rmtree(path)
    return removed
