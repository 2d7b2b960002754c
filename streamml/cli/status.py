"""``streamml status [PIPELINE]``: components, last window, open alerts, model versions."""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.table import Table

from streamml.cli.context import CliState, pass_state
from streamml.cli.demo import alerts_table, models_table, window_table
from streamml.pipeline.status import pipeline_status
from streamml.runtime.checkpoint import hmac_key_from


@click.command("status")
@click.argument("pipeline", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@pass_state
def command(state: CliState, pipeline: str | None, as_json: bool) -> None:
    """Show what PIPELINE (a name; default: the pipeline setting) is doing, from its topics.

    \b
    - components: running (checkpointed in the last 15 s), idle or not started,
      and lag (records on their inputs past their last checkpoint);
    - the last statistics window's summary per feature;
    - the alerts still open on <pipeline>.anomalies;
    - the model versions on <pipeline>.models with their metrics.

    Read-only: it joins no consumer group, so it is safe during a run.
    """
    name = pipeline or state.settings.pipeline
    status = pipeline_status(state.log(), name, hmac_key=hmac_key_from(state.settings))
    view = status.view
    if as_json:
        click.echo(json.dumps({
            "pipeline": name,
            "components": [c.__dict__ for c in status.components],
            "windows": view.windows,
            "last_window": view.last_window,
            "open_alerts": view.open_alerts,
            "models": [{k: m.get(k) for k in ("name", "version", "candidate_id", "metrics",
                                              "examples_seen")} for m in view.models],
        }, default=str))
        return
    console = Console()
    table = Table("component", "state", "lag", "last checkpoint", title=f"pipeline {name}",
                  title_justify="left")
    now = time.time() * 1000
    for c in status.components:
        age = ("-" if c.last_checkpoint_ms is None
               else f"{(now - c.last_checkpoint_ms) / 1000:.0f}s ago")
        table.add_row(c.name, c.state, "-" if c.lag is None else str(c.lag), age)
    console.print(table)
    if view.last_window:
        console.print(window_table(view.last_window))
    console.print(alerts_table(view, limit=50))
    console.print(models_table(view))
