"""``streamml connectors list``: the connector definitions of the ``connectors/`` folder."""

from __future__ import annotations

import click

from streamml.connectors.definition import default_connectors_dir, list_connectors


@click.group("connectors")
def command() -> None:
    """Connector definitions (connectors/<name>.yaml): list them; run one with `ingest`."""


@command.command("list")
@click.option("--dir", "directory", metavar="DIR", default=None,
              help="Definitions folder. Env: STREAMML_CONNECTORS_DIR. Default: ./connectors "
                   "(or the source checkout's).")
def list_command(directory: str | None) -> None:
    """Print NAME, TYPE, PIPELINE and SOURCE of every connector definition."""
    definitions = list_connectors(directory)
    folder = directory or str(default_connectors_dir())
    if not definitions:
        click.echo(f"streamml: no connector definitions in {folder}", err=True)
        return
    rows = [("NAME", "TYPE", "PIPELINE", "SOURCE")]
    for d in definitions:
        rows.append((d.name, d.type, d.pipeline or "-", d.build_source().describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
