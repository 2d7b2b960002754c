"""``streamml promote``: a backfill's schema and/or model to the live pipeline.

See :mod:`streamml.history.promote` (models stay signed: re-published unchanged,
or re-signed with ``signing_key`` when the version must change).
"""

from __future__ import annotations

import click

from streamml.cli.context import CliState, pass_state
from streamml.history.promote import promote


@click.command("promote")
@click.option("--namespace", "-n", required=True, metavar="NAME",
              help="The replay namespace holding the backfilled artifacts.")
@click.option("--pipeline", "-p", default=None,
              help="The live pipeline to promote to (default: the pipeline setting).")
@click.option("--schema", "with_schema", is_flag=True,
              help="Promote the latest schema version(s) of NAME.schema.")
@click.option("--model", default=None, metavar="MODEL",
              help="Promote the latest release of MODEL on NAME.models (with its chunks).")
@pass_state
def command(state: CliState, namespace: str, pipeline: str | None, with_schema: bool,
            model: str | None) -> None:
    """Copy backfilled artifacts of NAME to the live pipeline's compacted topics.

    Versions are kept when above the live latest, else the next version is
    used. Signed model releases are re-published byte for byte; when the
    version must change, the signing key (STREAMML_SIGNING_KEY) re-signs them.
    """
    pipeline = pipeline or state.settings.pipeline
    key = state.settings.signing_key
    signing_key = key.get_secret_value().encode() if key is not None else None
    result = promote(state.log(), namespace, pipeline, schema=with_schema, model=model,
                     signing_key=signing_key or None)
    for p in result.promoted:
        if p.version is None:
            click.echo(f"streamml: {p.kind} {p.name} v{p.from_version}: not promoted ({p.note})",
                       err=True)
        else:
            how = "re-signed" if p.resigned else "unchanged"
            extra = f", {p.chunks} chunk(s)" if p.chunks else ""
            click.echo(f"streamml: promoted {p.kind} {p.name} v{p.from_version} from "
                       f"{namespace} to {pipeline} as v{p.version} ({how}{extra})", err=True)
