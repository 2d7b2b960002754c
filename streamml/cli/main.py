"""Entry point of the ``streamml`` command.

Each sub-command lives in its own module under :mod:`streamml.cli` and is
registered here. Global options (``--broker``, ``--config``) are resolved into
a :class:`streamml.settings.Settings` stored on the click context object.

User errors (:class:`streamml.errors.StreamMLError`) print one line on stderr,
``streamml: error: ...``, and exit non-zero, with no traceback.
"""

from __future__ import annotations

import sys

import click

from streamml import __version__
from streamml.cli.context import CliState
from streamml.errors import StreamMLError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--broker",
    "-b",
    metavar="URL",
    default=None,
    help="embedded://PATH (default ./.streamml) or kafka://HOST:PORT[,HOST:PORT]. "
    "Env: STREAMML_BROKER.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    default=None,
    type=click.Path(dir_okay=False),
    help="Settings file (YAML, TOML or JSON). Env: STREAMML_CONFIG. "
    "Default: ./streamml.yaml if present.",
)
@click.version_option(__version__, prog_name="streamml")
@click.pass_context
def cli(ctx: click.Context, broker: str | None, config_file: str | None) -> None:
    """streamml: TFX as an event-driven streaming system.

    Components are stream processors connected by topics named
    <pipeline>.<role> on the embedded log (default) or Apache Kafka.
    Settings come from flags, then STREAMML_* environment variables, then the
    config file.
    """
    ctx.obj = CliState(broker=broker, config_file=config_file)


def _register() -> None:
    from streamml.cli import (
        alerts,
        archive,
        connectors,
        demo,
        ingest,
        lineage,
        produce,
        promote,
        query,
        replay,
        run,
        schema,
        serve,
        stats,
        status,
        tail,
        topics,
        validate,
        worker,
    )

    for module in (demo, run, status, topics, produce, tail, connectors, ingest, stats, schema,
                   validate, alerts, worker, serve, archive, query, lineage, replay, promote):
        cli.add_command(module.command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (used by the console script and tests)."""
    _register()
    from streamml.signals import keep_signals_from_pyarrow

    keep_signals_from_pyarrow()
    try:
        cli.main(args=argv, prog_name="streamml", standalone_mode=False)
    except StreamMLError as exc:
        click.echo(f"streamml: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("streamml: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
