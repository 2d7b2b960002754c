"""``streamml produce TOPIC``: append JSON lines from stdin or a file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO

import click
import orjson

from streamml.cli.context import CliState, pass_state
from streamml.errors import InvalidRecord
from streamml.log.base import Log, TopicSpec

BATCH = 5_000


def default_spec(topic: str) -> TopicSpec:
    """The spec ``produce`` auto-creates a topic with: the catalog's if it names a role."""
    try:
        from streamml.catalog import load_catalog

        catalog = load_catalog()
        found = catalog.role_of(topic)
        if found is not None:
            return catalog.spec(*found)
    except ImportError:  # pragma: no cover - catalog always ships
        pass
    return TopicSpec(name=topic, partitions=1)


def ensure_topic(log: Log, topic: str) -> None:
    """Create ``topic`` with default settings if missing, saying so on stderr."""
    if log.topic_exists(topic):
        return
    spec = default_spec(topic)
    if log.create_topic(spec, exist_ok=True):
        click.echo(
            f"streamml: created topic {topic} ({spec.partitions} partition(s), "
            f"cleanup={spec.cleanup_policy})",
            err=True,
        )


def _parsed_lines(
    stream: IO[bytes], key_field: str | None
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Yield ``(line_number, value, key)`` for each non-blank line; bad JSON raises."""
    for number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"line {number}: not valid JSON ({exc})") from exc
        key: bytes | None = None
        if key_field is not None:
            if not isinstance(obj, dict) or obj.get(key_field) is None:
                raise InvalidRecord(f"line {number}: no field {key_field!r} to use as key")
            k = obj[key_field]
            key = (k if isinstance(k, str) else orjson.dumps(k).decode()).encode()
        yield number, line, key


@click.command("produce")
@click.argument("topic")
@click.option(
    "--file",
    "-f",
    "path",
    type=click.File("rb"),
    default=None,
    help="Read JSON lines from FILE instead of stdin.",
)
@click.option("--key", "key_field", metavar="FIELD", default=None,
              help="Use this field of each object as the record key.")
@click.option("--partition", type=int, default=None, help="Write every record to this partition.")
@pass_state
def command(
    state: CliState, topic: str, path: IO[bytes] | None, key_field: str | None,
    partition: int | None
) -> None:
    """Append JSON lines (one JSON value per line) to TOPIC.

    A topic that does not exist is created with default settings (the
    definition in topics/ when the name is <pipeline>.<role>), as Kafka's
    auto-create does, and a note goes to stderr. A line that is not valid JSON
    stops the command with its line number; the lines before it are written.
    """
    log = state.log()
    ensure_topic(log, topic)
    stream = path if path is not None else sys.stdin.buffer
    sent = 0
    with log.producer() as producer:
        values: list[bytes] = []
        keys: list[bytes | None] = []
        try:
            for _, value, key in _parsed_lines(stream, key_field):
                values.append(value)
                keys.append(key)
                if len(values) >= BATCH:
                    producer.send_many(topic, values, keys, partition=partition)
                    sent += len(values)
                    values, keys = [], []
        except InvalidRecord as exc:
            producer.send_many(topic, values, keys, partition=partition)
            producer.flush()
            written = sent + len(values)
            raise InvalidRecord(f"{exc}; {written} record(s) before it were written") from None
        producer.send_many(topic, values, keys, partition=partition)
        sent += len(values)
        producer.flush()
    click.echo(f"produced {sent} record(s) to {topic}", err=True)
