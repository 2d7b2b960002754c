"""The questions the lineage store answers: where a model came from and where it went.

:func:`lineage_answer` walks the ``edges`` view of a
:class:`~streamml.history.lineage_store.LineageStore` upstream from a model
(its candidates, their training executions and input offset ranges, schema
versions, evaluations and gate decision, the alerts open while it trained) and
downstream (artifacts derived from it, servers that loaded it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamml.errors import ConfigError

if TYPE_CHECKING:
    from streamml.history.lineage_store import LineageStore

#: Ancestors of one artifact (itself included), a prefix of the upstream queries.
_UP = ("WITH RECURSIVE up(id) AS (SELECT ?::VARCHAR UNION "
       "SELECT e.src FROM edges e JOIN up ON e.dst = up.id) ")


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """``MODEL[:VERSION]`` → ``(model, version or None)``.

    >>> parse_model_ref("tipper:3"), parse_model_ref("tipper")
    (('tipper', 3), ('tipper', None))
    """
    name, sep, version = ref.rpartition(":")
    if sep and version.isdigit() and name:
        return name, int(version)
    return ref, None


def merge_ranges(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Offset ranges per ``(topic, partition)``, overlaps merged (training ranges are cumulative).

    ``records`` counts the offsets covered (an upper bound of the examples: other
    splits and compaction leave gaps); ``ranges`` the disjoint runs.

    >>> rows = [{"topic": "t", "partition": 0, "start_offset": a, "end_offset": b}
    ...         for a, b in [(0, 10), (0, 25), (40, 50)]]
    >>> [(r["start"], r["end"], r["records"], r["ranges"]) for r in merge_ranges(rows)]
    [(0, 50, 35, 2)]
    """
    by_tp: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for r in rows:
        by_tp.setdefault((r["topic"], int(r["partition"])), []).append(
            (int(r["start_offset"]), int(r["end_offset"])))
    out = []
    for (topic, partition), spans in sorted(by_tp.items()):
        runs: list[list[int]] = []
        for a, b in sorted(spans):
            if runs and a <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], b)
            else:
                runs.append([a, b])
        out.append({"topic": topic, "partition": partition, "start": runs[0][0],
                    "end": max(b for _, b in runs), "records": sum(b - a for a, b in runs),
                    "ranges": len(runs)})
    return out


def _schemas(store: LineageStore, model: dict[str, Any], ancestors: list[dict[str, Any]],
             window: dict[str, int] | None) -> list[dict[str, Any]]:
    """Schema ancestors; else the versions in force while it trained (by creation time)."""
    linked = [a for a in ancestors if a["type"] == "schema"]
    if linked or window is None:
        return linked
    rows = store.rows("SELECT * FROM artifacts WHERE type = 'schema' AND pipeline = ? "
                       "AND created_ms <= ? ORDER BY created_ms, version",
                       [model["pipeline"], window["end_ms"]])
    before = [r for r in rows if r["created_ms"] <= window["start_ms"]]
    during = [r for r in rows if r["created_ms"] > window["start_ms"]]
    return before[-1:] + during


def lineage_answer(store: LineageStore, ref: str) -> dict[str, Any]:
    """Upstream and downstream of model ``MODEL[:VERSION]`` (``ConfigError`` if unknown)."""
    name, version = parse_model_ref(ref)
    model = store.find_model(name, version)
    if model is None:
        raise ConfigError(f"no model {ref!r} in the lineage store {store.path}")
    mid = model["id"]
    ancestors = store.rows(_UP + "SELECT a.* FROM up JOIN artifacts a ON a.id = up.id "  # noqa: S608 - constant SQL, values bound
                            "WHERE a.id <> ? ORDER BY a.created_ms, a.id", [mid, mid])
    execs = store.rows(
        _UP + "SELECT DISTINCT x.* FROM up JOIN produced p ON p.artifact_id = up.id "  # noqa: S608 - constant SQL, values bound
        "JOIN executions x ON x.id = p.execution_id ORDER BY x.time, x.id", [mid])
    exec_ids = [x["id"] for x in execs]
    ranges = merge_ranges(store.rows(
        'SELECT topic, "partition", start_offset, end_offset FROM event_inputs '
        "WHERE list_contains(?, execution_id)", [exec_ids])) if exec_ids else []
    starts = [x["event_start_ms"] for x in execs if x["event_start_ms"] is not None]
    ends = [x["event_end_ms"] for x in execs if x["event_end_ms"] is not None]
    window = {"start_ms": min(starts), "end_ms": max(ends)} if starts and ends else None
    # the evaluation that judged this model: a direct input, or one of its own candidate
    direct = {r["src"] for r in store.rows("SELECT src FROM edges WHERE dst = ?", [mid])}
    judged = [mid] if model["type"] == "candidate" else [
        a["id"] for a in ancestors if a["type"] == "candidate" and a["id"] in direct]
    evaluations = store.rows(
        "SELECT DISTINCT a.* FROM artifacts a LEFT JOIN edges e ON e.dst = a.id "
        "WHERE a.type IN ('evaluation', 'blessing') AND "
        "(list_contains(?, a.id) OR list_contains(?, e.src)) ORDER BY a.created_ms, a.id",
        [sorted(direct), judged])
    alerts = []
    if window is not None:
        alerts = store.rows(
            "SELECT * FROM alerts WHERE pipeline = ? AND opened_ms < ? "
            "AND (resolved_ms IS NULL OR resolved_ms > ?) ORDER BY opened_ms, id",
            [model["pipeline"], window["end_ms"], window["start_ms"]])
    down = store.rows(
        "WITH RECURSIVE d(id) AS (SELECT ?::VARCHAR UNION "
        "SELECT e.dst FROM edges e JOIN d ON e.src = d.id) "
        "SELECT a.* FROM d JOIN artifacts a ON a.id = d.id WHERE a.id <> ? "
        "ORDER BY a.created_ms", [mid, mid])
    deployments = store.rows(
        "SELECT host, action, time, event_id FROM deployments WHERE model_id = ? "
        "ORDER BY time, host", [mid])
    return {
        "model": model,
        "upstream": {
            "examples": ranges,
            "event_time": window,
            "executions": execs,
            "schemas": _schemas(store, model, ancestors, window),
            "evaluations": evaluations,
            "blessed": _gate(evaluations),
            "alerts_open_while_training": alerts,
            "artifacts": ancestors,
        },
        "downstream": {"deployments": deployments, "artifacts": down},
    }


def _gate(evaluations: list[dict[str, Any]]) -> bool | None:
    for ev in reversed(evaluations):
        props = ev.get("properties") or {}
        if isinstance(props, dict) and isinstance(props.get("blessed"), bool):
            return props["blessed"]
    return None
