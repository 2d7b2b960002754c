"""``streamml tail TOPIC``: print records of a topic, optionally following it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import click
import orjson

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.log.base import Consumer, Record, TopicPartition


def parse_time(text: str) -> int:
    """ISO 8601 (or epoch milliseconds) to epoch milliseconds; naive times are UTC.

    >>> parse_time("2026-01-01T00:00:00Z")
    1767225600000
    >>> parse_time("1767225600000")
    1767225600000
    """
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--from-time {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _value(data: bytes | None) -> object:
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode()}


def record_json(record: Record) -> bytes:
    """One record as a JSON object (value decoded when it is JSON)."""
    return orjson.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms,
            "key": None if record.key is None else record.key.decode("utf-8", "replace"),
            "value": _value(record.value),
            "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers},
        }
    )


def record_text(record: Record) -> str:
    moment = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    key = "" if record.key is None else f" key={record.key.decode('utf-8', 'replace')}"
    value = "null" if record.value is None else record.value.decode("utf-8", "replace")
    return f"{record.partition}:{record.offset} {stamp}{key} {value}"


def _position(consumer: Consumer, tps: list[TopicPartition], last: int,
              from_beginning: bool, from_time: int | None) -> None:
    if from_beginning:
        consumer.seek_to_beginning(tps)
    elif from_time is not None:
        consumer.seek_to_time(from_time, tps)
    else:
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - last))


@click.command("tail")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record.")
@click.option("--from-time", metavar="ISO8601", default=None,
              help="Start at the first record at or after this time (or epoch ms).")
@click.option("--last", "-n", default=10, show_default=True,
              help="Without --from-*, start this many records before the end of each partition.")
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new records (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record per line.")
@click.option("--max", "max_records", type=int, default=None, help="Stop after this many records.")
@pass_state
def command(state: CliState, topic: str, from_beginning: bool, from_time: str | None, last: int,
            follow: bool, as_json: bool, max_records: int | None) -> None:
    """Print records of TOPIC: the last few, all (--from-beginning) or from a time.

    Text lines are "partition:offset time key=KEY value". With --json each line
    is {"topic", "partition", "offset", "timestamp", "key", "value", "headers"},
    the value decoded when it is JSON. Works while another process appends.
    """
    if from_beginning and from_time:
        raise ConfigError("use either --from-beginning or --from-time, not both")
    start_ms = parse_time(from_time) if from_time else None
    log = state.log()
    info = log.describe_topic(topic)  # UnknownTopic when missing
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    printed = 0
    with log.consumer() as consumer:
        consumer.assign(tps)
        _position(consumer, tps, last, from_beginning, start_ms)
        ends = consumer.end_offsets(tps)
        stdout = click.get_text_stream("stdout")
        while True:
            batch = consumer.poll(timeout_s=0.5 if follow else 0.2)
            for record in batch:
                stdout.write(record_json(record).decode() if as_json else record_text(record))
                stdout.write("\n")
                printed += 1
                if max_records is not None and printed >= max_records:
                    stdout.flush()
                    return
            stdout.flush()
            if not follow and not batch and all(
                consumer.position(tp) >= ends[tp] for tp in tps
            ):
                return
