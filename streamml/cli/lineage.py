"""``streamml lineage MODEL[:VERSION]``: upstream and downstream of a model (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from streamml.catalog import load_catalog
from streamml.cli.context import CliState, pass_state
from streamml.cli.tail import parse_time
from streamml.errors import ConfigError
from streamml.history.layout import HISTORY_DIR_ENV, LINEAGE_DB, resolve_dir
from streamml.history.lineage import LineageStore


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def render(answer: dict[str, Any]) -> str:
    """The human-readable lineage report."""
    model, up, down = answer["model"], answer["upstream"], answer["downstream"]
    lines = [f"model {model['key'] or model['id']} v{model['version']} ({model['type']}, "
             f"id {model['id']}, created {_when(model['created_ms'])})", "upstream:"]
    window = up["event_time"]
    if window:
        lines.append(f"  examples event time: {_when(window['start_ms'])} .. "
                     f"{_when(window['end_ms'])}")
    for r in up["examples"]:
        lines.append(f"  {r['topic']}[{r['partition']}] offsets {r['start']}..{r['end']} "
                     f"({r['records']} records in {r['ranges']} range(s))")
    for x in up["executions"]:
        lines.append(f"  execution {x['id']} ({x['component']}, {_when(x['time'])})")
    for s in up["schemas"] or [{"id": "-", "version": None}]:
        lines.append(f"  schema {s['id']} version {s['version']}")
    for e in up["evaluations"]:
        props = e.get("properties") or {}
        lines.append(f"  evaluation {e['id']}: blessed={props.get('blessed')} "
                     f"{orjson.dumps(props.get('metrics', {})).decode()}")
    gate = {True: "BLESSED", False: "NOT BLESSED", None: "unknown"}[up["blessed"]]
    lines.append(f"  gate decision: {gate}")
    alerts = up["alerts_open_while_training"]
    lines.append(f"  alerts open while it trained: {len(alerts)}")
    for a in alerts:
        lines.append(f"    {a['id']} opened {_when(a['opened_ms'])} "
                     f"resolved {_when(a['resolved_ms'])}")
    lines.append("downstream:")
    for d in down["deployments"]:
        lines.append(f"  {d['action']} by {d['host']} at {_when(d['time'])}")
    for a in down["artifacts"]:
        lines.append(f"  artifact {a['id']} ({a['type']})")
    if not down["deployments"] and not down["artifacts"]:
        lines.append("  (none)")
    return "\n".join(lines)


@click.command("lineage")
@click.argument("model", required=False)
@click.option("--pipeline", "-p", default=None, help="Pipeline (default: the pipeline setting).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              envvar=HISTORY_DIR_ENV, help="History folder holding lineage.duckdb.")
@click.option("--no-sync", is_flag=True,
              help="Do not read new <p>.metadata events first (offline; store read-only).")
@click.option("--expire-before", metavar="ISO8601", default=None,
              help="Delete lineage recorded before this time (and emit an 'expired' event).")
@pass_state
def command(state: CliState, model: str | None, pipeline: str | None, as_json: bool,
            directory: str | None, no_sync: bool, expire_before: str | None) -> None:
    """Print where MODEL[:VERSION] came from and where it went.

    Upstream: example offset and event-time ranges, schema version, evaluation
    and gate decision, drift alerts open while it trained. Downstream: servers
    that loaded it. First catches up with <pipeline>.metadata into the DuckDB
    store (<dir>/lineage.duckdb) unless --no-sync.
    """
    if model is None and expire_before is None:
        raise ConfigError("name a MODEL[:VERSION], or use --expire-before")
    pipeline = pipeline or state.settings.pipeline
    db = resolve_dir(directory) / LINEAGE_DB
    # a running pipeline's materializer holds the file only while it writes: wait for it
    store = LineageStore(db, read_only=no_sync and expire_before is None, wait_s=10.0)
    try:
        if not (no_sync and expire_before is None):
            log = state.log()
            store.sync(log, pipeline)
        if expire_before is not None:
            deleted, marker = store.expire(parse_time(expire_before), pipeline)
            topic = load_catalog().topic_name(pipeline, "metadata")
            log = state.log()
            if log.topic_exists(topic):
                with log.producer() as producer:
                    producer.send(topic, orjson.dumps(marker.to_json()), marker.id.encode())
                    producer.flush()
            click.echo(f"streamml: expired {deleted} lineage event(s) recorded before "
                       f"{_when(parse_time(expire_before))}", err=True)
        if model is not None:
            answer = store.lineage(model)
            if as_json:
                click.echo(orjson.dumps(answer, default=str).decode())
            else:
                click.echo(render(answer))
    finally:
        store.close()
