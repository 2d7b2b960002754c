"""``streamml topics apply|list|describe|delete``: manage topics on the log."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from streamml import serde
from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.log.base import TopicInfo, TopicSpec


@click.group("topics")
def command() -> None:
    """Create, list and inspect topics.

    Topic definitions live in the top-level topics/ folder: one YAML file per
    role (examples, statistics, models, ...), named <pipeline>.<role> on the log.
    """


def _retention(ms: int | None) -> str:
    if ms is None:
        return "forever"
    if ms % 86_400_000 == 0:
        return f"{ms // 86_400_000}d"
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    return f"{ms}ms"


def _info_json(info: TopicInfo) -> dict[str, object]:
    spec = asdict(info.spec)
    spec["config"] = dict(info.spec.config)
    return {
        "name": info.name,
        "spec": spec,
        "partitions": [asdict(p) for p in info.partitions],
        "records": info.records,
    }


@command.command("apply")
@click.option("--pipeline", "-p", default=None, help="Pipeline name (default: setting `pipeline`).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="Only these roles (repeatable). Default: every role in topics/.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be created; change nothing.")
@pass_state
def apply_cmd(state: CliState, pipeline: str | None, roles: tuple[str, ...], dry_run: bool) -> None:
    """Create every topic of a pipeline from the topics/ definitions.

    Existing topics are left as they are (a warning names any whose partition
    count differs from the definition). Safe to run again.
    """
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    name = pipeline or state.settings.pipeline
    unknown = sorted(set(roles) - set(catalog.roles))
    if unknown:
        known = ", ".join(catalog.roles)
        raise ConfigError(f"unknown role(s) {', '.join(unknown)}; known: {known}")
    specs = catalog.specs(name, list(roles) or None)
    if dry_run:
        for spec in specs:
            click.echo(f"would create {spec.name} ({_summary(spec)})")
        return
    log = state.log()
    for spec in specs:
        if log.create_topic(spec, exist_ok=True):
            click.echo(f"created {spec.name} ({_summary(spec)})")
            continue
        existing = log.describe_topic(spec.name)
        if len(existing.partitions) != spec.partitions:
            click.echo(
                f"warning: {spec.name} exists with {len(existing.partitions)} partitions, "
                f"definition says {spec.partitions}",
                err=True,
            )
        click.echo(f"exists  {spec.name}")


def _summary(spec: TopicSpec) -> str:
    parts = "partition" if spec.partitions == 1 else "partitions"
    return (
        f"{spec.partitions} {parts}, cleanup={spec.cleanup_policy}, "
        f"retention={_retention(spec.retention_ms)}"
    )


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic per line.")
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """List topics with partitions, cleanup policy and record counts."""
    log = state.log()
    infos = [log.describe_topic(name) for name in log.list_topics()]
    if as_json:
        for info in infos:
            click.echo(serde.encode(_info_json(info)).decode())
        return
    table = Table("topic", "partitions", "cleanup", "retention", "records", box=None)
    for info in infos:
        table.add_row(
            info.name,
            str(len(info.partitions)),
            info.spec.cleanup_policy,
            _retention(info.spec.retention_ms),
            str(info.records),
        )
    if not infos:
        click.echo(f"no topics on {log.url}")
        return
    Console().print(table)


@command.command("describe")
@click.argument("topic")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def describe_cmd(state: CliState, topic: str, as_json: bool) -> None:
    """Show a topic's settings and each partition's offsets."""
    info = state.log().describe_topic(topic)
    if as_json:
        click.echo(serde.encode(_info_json(info)).decode())
        return
    spec = info.spec
    click.echo(f"topic      {spec.name}")
    click.echo(f"partitions {len(info.partitions)}")
    click.echo(f"cleanup    {spec.cleanup_policy}")
    click.echo(f"retention  {_retention(spec.retention_ms)}")
    if spec.retention_bytes is not None:
        click.echo(f"retention  {spec.retention_bytes} bytes per partition")
    for key, value in sorted(spec.config.items()):
        click.echo(f"config     {key}={value}")
    table = Table("partition", "start", "end", "records", box=None)
    for p in info.partitions:
        table.add_row(str(p.partition), str(p.start_offset), str(p.end_offset),
                      str(p.end_offset - p.start_offset))
    Console().print(table)


@command.command("delete")
@click.argument("topic")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete_cmd(state: CliState, topic: str, yes: bool) -> None:
    """Delete a topic and all its records."""
    log = state.log()
    log.describe_topic(topic)  # UnknownTopic if missing
    if not yes:
        click.confirm(f"delete {topic} and all its records?", abort=True)
    log.delete_topic(topic)
    click.echo(f"deleted {topic}")
