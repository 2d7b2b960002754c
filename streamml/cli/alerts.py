"""``streamml alerts``: the alerts of ``<pipeline>.anomalies``, folded per alert, or followed live.

Each alert id has a life of records (``open`` → ``update``… → ``resolved``);
this command shows the latest state of each: status, type, feature, since
when (``first_seen``), how many examples or windows, and the message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from streamml.cli.context import CliState, pass_state
from streamml.log.base import Consumer, Log, TopicPartition
from streamml.log.read import read_to_end


def read_topic(log: Log, topic: str,
               ends: dict[TopicPartition, int] | None = None) -> list[Any]:
    """Every decoded value of ``topic`` (all partitions, oldest first per partition).

    Reads up to the end offsets found when it starts, and stores them in ``ends``
    (if given), so a follower can go on from exactly there.
    """
    return [orjson.loads(r.value) for r in read_to_end(log, topic, ends_out=ends) if r.value]


def iso(ms: int | None) -> str:
    """Epoch milliseconds as a short UTC time.

    >>> iso(1_700_000_000_000)
    '2023-11-14T22:13:20Z'
    """
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def fold(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Latest record per alert id, in order of first appearance.

    >>> fold([{"id": "a", "status": "open", "count": 1}, {"id": "a", "status": "update",
    ...       "count": 3}])["a"]["count"]
    3
    """
    out: dict[str, dict[str, Any]] = {}
    for v in values:
        if isinstance(v, dict) and "id" in v:
            out[v["id"]] = v
    return out


def alert_line(a: dict[str, Any]) -> str:
    """One readable line of an alert record."""
    what = a.get("metric")
    measured = ""
    if what and a.get("value") is not None:
        thr = a.get("threshold")
        measured = f" {what}={a['value']:.3g}" + (f" (threshold {thr:g})" if thr is not None
                                                  else "")
    return (f"{a.get('status', '?'):<8} {a.get('severity', '?'):<7} {a.get('type', '?')} "
            f"feature={a.get('feature') or '-'} since={iso(a.get('first_seen'))} "
            f"count={a.get('count', 0)}{measured} — {a.get('message', '')}")


def _follow(consumer: Consumer, as_json: bool, only_open: bool,
            max_records: int | None = None) -> None:
    stdout = click.get_text_stream("stdout")
    printed = 0
    while max_records is None or printed < max_records:
        for r in consumer.poll(0.5):
            if not r.value:
                continue
            a = orjson.loads(r.value)
            if only_open and a.get("status") == "resolved":
                continue
            stdout.write((orjson.dumps(a).decode() if as_json else alert_line(a)) + "\n")
            printed += 1
            if max_records is not None and printed >= max_records:
                break
        stdout.flush()


@click.command("alerts")
@click.option("--pipeline", "-p", default=None, help="Pipeline (default: the settings').")
@click.option("--open", "only_open", is_flag=True, help="Only alerts not resolved yet.")
@click.option("--follow", "-f", is_flag=True,
              help="After the current state, print each new alert record live (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert per line.")
@click.option("--max", "max_records", type=int, default=None,
              help="With --follow, stop after this many new records.")
@pass_state
def command(state: CliState, pipeline: str | None, only_open: bool, follow: bool,
            as_json: bool, max_records: int | None) -> None:
    """Show the alerts of <pipeline>.anomalies: which feature, what kind, since when, how many.

    Without --follow: the latest state of every alert (one line each, open ones
    first). With --follow: then every new open/update/resolved record as it comes.
    """
    p = pipeline or state.settings.pipeline
    topic = f"{p}.anomalies"
    log = state.log()
    ends: dict[TopicPartition, int] = {}
    alerts = list(fold(read_topic(log, topic, ends)).values())
    if only_open:
        alerts = [a for a in alerts if a.get("status") != "resolved"]
    alerts.sort(key=lambda a: (a.get("status") == "resolved", a.get("first_seen", 0)))
    stdout = click.get_text_stream("stdout")
    for a in alerts:
        stdout.write((orjson.dumps(a).decode() if as_json else alert_line(a)) + "\n")
    if not as_json and not alerts:
        click.echo(f"streamml: no {'open ' if only_open else ''}alerts on {topic}", err=True)
    stdout.flush()
    if follow:
        with log.consumer() as consumer:  # from where the state above ended: none missed
            consumer.assign(list(ends))
            for tp, end in ends.items():
                consumer.seek(tp, end)
            _follow(consumer, as_json, only_open, max_records)
