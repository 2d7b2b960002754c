"""``streamml schema infer FILE`` / ``streamml schema show``: the schema file and topic."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import orjson
import yaml

from streamml.cli.alerts import read_topic
from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.payloads.schema import SchemaVersion
from streamml.validation.files import read_table
from streamml.validation.schema import infer_schema, save_schema


@click.group("schema")
def command() -> None:
    """Infer a schema from a file, or show the pipeline's current schema version."""


@command.command("infer")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the schema here (.yaml/.yml, or .json); default: YAML on stdout.")
@click.option("--pipeline", "-p", default=None, help="Pipeline named in the schema.")
@click.option("--max-domain-size", default=100, show_default=True,
              help="String features with at most this many values get a domain.")
@click.option("--label", default=None, help="Name of the label feature, if any.")
@pass_state
def infer(state: CliState, file: str, output: str | None, pipeline: str | None,
          max_domain_size: int, label: str | None) -> None:
    """Infer a schema from FILE (CSV or Parquet): types, presence, domains, ranges.

    Edit the result and use it with `streamml validate FILE --schema schema.yaml`.
    """
    try:
        table = read_table(file)
    except Exception as exc:  # noqa: BLE001 - any reader error is a user error here
        raise ConfigError(f"cannot read {file}: {str(exc).splitlines()[0]}") from None
    p = pipeline or state.settings.pipeline
    try:
        schema = infer_schema(table, pipeline=p, created_at=int(time.time() * 1000),
                              max_domain_size=max_domain_size, label=label)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    if output is None:
        data = schema.model_dump(mode="json", exclude_defaults=True)
        data["version"], data["origin"] = schema.version, schema.origin
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return
    save_schema(schema, Path(output))
    click.echo(f"streamml: wrote schema of {len(schema.features)} feature(s) "
               f"from {schema.num_examples} example(s) to {output}", err=True)


@command.command("show")
@click.option("--pipeline", "-p", default=None, help="Pipeline (default: the settings').")
@click.option("--name", default="default", show_default=True, help="Schema name (record key).")
@click.option("--version", "version", type=int, default=None,
              help="This version instead of the latest.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@pass_state
def show(state: CliState, pipeline: str | None, name: str, version: int | None,
         as_json: bool) -> None:
    """Print the latest schema version published on <pipeline>.schema."""
    p = pipeline or state.settings.pipeline
    topic = f"{p}.schema"
    found: SchemaVersion | None = None
    for value in read_topic(state.log(), topic):
        if not isinstance(value, dict) or value.get("name", "default") != name:
            continue
        s = SchemaVersion.model_validate(value)
        if (version is None and (found is None or s.version >= found.version)) or \
                s.version == version:
            found = s
    if found is None:
        what = f"version {version} of " if version is not None else ""
        raise ConfigError(f"no {what}schema {name!r} on {topic}")
    data = found.model_dump(mode="json", exclude_defaults=True)
    data["version"], data["origin"] = found.version, found.origin
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
