"""Replay determinism: the same range twice, from the log and from the archive (issue 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamml.errors import ConfigError
from streamml.history.archive import ArchiveSink
from streamml.history.replay import replay
from streamml.log.embedded import EmbeddedLog
from tests.unit.test_history_archive import T0, fill, log_records


def test_same_range_twice_is_identical_from_log_and_archive(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        fill(log, "demo.examples", 600, step_ms=30_000)  # 5 hours
        root = tmp_path / "arch"
        ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
        lo, hi = T0 + 3_600_000, T0 + 4 * 3_600_000 + 17
        a = replay(log, "demo", lo, hi, source="kafka", namespace="bf1")
        b = replay(log, "demo", lo, hi, source="kafka", namespace="bf2")
        c = replay(log, "demo", lo, hi, source="archive", namespace="bf3", root=root)
        assert a.records == b.records == c.records > 0
        one, two, three = (log_records(log, f"{ns}.examples") for ns in ("bf1", "bf2", "bf3"))
        assert one == two == three
        assert all(lo <= ts < hi for ts, _, _ in one.values())
        assert len(one) == a.records
        with pytest.raises(ConfigError, match="not empty"):
            replay(log, "demo", lo, hi, source="kafka", namespace="bf1")
