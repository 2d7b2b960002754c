"""``streamml demo``: the main job, with a live progress display and a summary."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streamml.cli.context import CliState, pass_state
from streamml.demo import DemoConfig, DemoSummary, DemoUpdate, run_demo
from streamml.pipeline.processes import resolve_processes
from streamml.pipeline.status import PipelineView

SHOWN_FEATURES = ("fare", "tips", "trip_miles", "trip_seconds", "payment_type")


def alert_line(alert: dict[str, Any]) -> str:
    """``DRIFT fare: 'fare' distribution changed ...`` (one line)."""
    return f"{alert.get('type')} {alert.get('feature') or '-'}: {alert.get('message', '')}"


def alerts_table(view: PipelineView, title: str = "alerts (open)", limit: int = 12) -> Table:
    table = Table("type", "feature", "split/window", "message", title=title,
                  title_justify="left")
    for a in view.open_alerts[-limit:]:
        window = (a.get("window") or {}).get("id", "-")
        table.add_row(str(a.get("type")), str(a.get("feature") or "-"), str(window),
                      str(a.get("message", ""))[:90])
    return table


def models_table(view: PipelineView) -> Table:
    table = Table("version", "candidate", "ROC AUC", "log loss", "examples", title="models",
                  title_justify="left")
    for m in view.models:
        metrics = m.get("metrics") or {}
        auc, loss = metrics.get("roc_auc"), metrics.get("log_loss")
        table.add_row(str(m.get("version")), str(m.get("candidate_id")),
                      "-" if auc is None else f"{auc:.4f}", "-" if loss is None else f"{loss:.4f}",
                      f"{m.get('examples_seen', 0):,}")
    return table


def window_table(window: dict[str, Any]) -> Table:
    w = window.get("window") or {}
    table = Table("feature", "count", "missing", "mean", "min", "max", "top values",
                  title=f"last statistics window ({window.get('split')} {w.get('id')}, "
                        f"{window.get('num_examples')} examples)", title_justify="left")
    features = window.get("features") or {}
    for name in SHOWN_FEATURES:
        f = features.get(name)
        if not f:
            continue
        num = f.get("numeric") or {}
        cat = f.get("categorical") or {}
        top = ", ".join(f"{t.get('value')}:{t.get('count')}"
                        for t in (cat.get("top_values") or [])[:3])

        def fmt(v: Any) -> str:
            return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

        table.add_row(name, str(f.get("count")), str(f.get("num_missing", "-")),
                      fmt(num.get("mean")), fmt(num.get("min")), fmt(num.get("max")), top)
    return table


def _live_view(u: DemoUpdate) -> Group:
    p = u.progress
    phase = ("before drift" if u.drift_row is None or p.ingested < u.drift_row
             else "[bold red]drift injected[/bold red]")
    head = Table.grid(padding=(0, 2))
    head.add_row("rows replayed", f"{p.ingested:,}/{u.total_rows:,}", "rate",
                 f"{p.rate:,.0f} rows/s", "elapsed", f"{p.elapsed_s:.1f}s", phase)
    head.add_row("statistics windows", str(u.view.windows), "open alerts",
                 str(len(u.view.open_alerts)), "evaluations", str(len(u.view.evaluations)),
                 f"models published: {len(u.view.models)}")
    procs = Table("component", "in", "out", "lag", title="components", title_justify="left")
    for c in p.connectors:
        procs.add_row(f"ingest/{c.connector}", f"{c.records_in:,}", f"{c.examples:,}", "-")
    for s in p.processors:
        procs.add_row(s.name, f"{s.records_in:,}", f"{s.emitted:,}", str(s.lag))
    parts: list[Any] = [head, procs]
    if u.view.open_alerts:
        parts.append(alerts_table(u.view, limit=6))
    if u.view.models:
        parts.append(models_table(u.view))
    return Group(*parts)


def print_summary(console: Console, summary: DemoSummary) -> None:
    view = summary.view
    if view.last_window:
        console.print(window_table(view.last_window))
    console.print(alerts_table(view, title="alerts still open at the end", limit=20))
    console.print(models_table(view))
    table = Table("", "", title="summary", title_justify="left", show_header=False)
    drift_alerts = sorted({f"{a['type']} {a.get('feature')}" for a in view.alerts.values()
                           if summary.drift_row is not None})
    table.add_row("pipeline", summary.pipeline)
    table.add_row("rows replayed", f"{summary.rows:,} (drift from row {summary.drift_row:,}: "
                  f"{summary.drift})" if summary.drift_row is not None else f"{summary.rows:,}")
    table.add_row("statistics windows", str(view.windows))
    table.add_row("alerts (type feature)", ", ".join(drift_alerts) or "none")
    blessed = len(view.blessed)
    auc = summary.best_auc
    table.add_row("evaluations", f"{len(view.evaluations)} ({blessed} blessed; best ROC AUC "
                  f"{'-' if auc is None else f'{auc:.4f}'})")
    table.add_row("models published", ", ".join(f"v{m['version']}" for m in view.models) or "-")
    table.add_row("elapsed", f"{summary.elapsed_s:.1f}s")
    console.print(table)
    if summary.prediction is not None and summary.predict_url:
        body = json.dumps({"instances": [summary.instance]})
        console.print("[bold]served prediction[/bold] (model server on a free port):")
        console.print(f"$ curl -s -X POST {summary.predict_url} -d '{body}'", soft_wrap=True,
                      highlight=False, markup=False)
        console.print(json.dumps(summary.prediction), soft_wrap=True, highlight=False,
                      markup=False)


@click.command("demo")
@click.option("--pipeline", "-p", default=None,
              help="Pipeline name, the <p> of <p>.<role> topics (default: setting `pipeline`).")
@click.option("--rows", type=click.IntRange(1), default=None, help="Replay only N rows.")
@click.option("--rate", type=click.FloatRange(0), default=1000.0, show_default=True,
              help="Replay rate in rows/s (0 = as fast as the pipeline goes).")
@click.option("--window", type=click.IntRange(100), default=1000, show_default=True,
              help="Examples per statistics window (per split).")
@click.option("--processes", "-n", default=None, metavar="N|auto",
              help="Spread the pipeline over N OS processes (auto: 2 when 2 CPUs are "
                   "usable, else 1); default: setting `processes` (auto).")
@click.option("--no-serve", is_flag=True, help="Skip the served prediction at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No live display; print the summary only.")
@pass_state
def command(state: CliState, pipeline: str | None, rows: int | None, rate: float, window: int,
            processes: str | None, no_serve: bool, quiet: bool) -> None:
    """Run the main job: the taxi pipeline end to end on a live replay, with drift.

    The bundled Chicago taxi CSV (15,002 trips) is replayed as a live stream at
    --rate rows/s, in a fixed-seed shuffle (the file in row order is not
    stationary), with event times one simulated second apart. It flows through
    the whole pipeline of streamml/examples/taxi_pipeline.py: ExampleGen →
    StatisticsGen (rolling windows), SchemaGen, ExampleValidator (alerts on
    <pipeline>.anomalies) → Trainer (two challengers) → Evaluator (blesses at
    ROC AUC >= 0.92) → Pusher (signed models on <pipeline>.models).

    Halfway through, drift is injected (fare and tips x1.5, a new payment type
    "Mobile"): alerts naming those features open; none before. At the end a
    model server starts on a free port and one prediction is served over REST.

    The pipeline's topics are reset first. Without a signing_key setting a
    random demo key signs the models for this run. Works on the embedded log
    (default) and with --broker kafka://HOST:PORT. With two usable CPUs the
    learning components (Trainer, Evaluator, Pusher) run in a second OS
    process (--processes auto, the default); --processes 1 keeps them here.
    """
    console = Console()
    log = state.log()
    config = DemoConfig(pipeline=pipeline or state.settings.pipeline, rows=rows, rate=rate,
                        window=window, serve=not no_serve,
                        processes=resolve_processes(processes if processes is not None
                                                    else state.settings.processes))
    pace = f"at {rate:,.0f} rows/s" if rate else "as fast as it goes"
    console.print(f"[bold]streamml demo[/bold] on {log.url}: the taxi pipeline "
                  f"[cyan]{config.pipeline}[/cyan], replaying the bundled taxi trips {pace}")
    if quiet:
        summary = run_demo(log, state.settings, config)
    else:
        with Live(console=console, refresh_per_second=8, transient=False) as live:
            summary = run_demo(log, state.settings, config, lambda u: live.update(_live_view(u)))
    if summary.generated_key:
        console.print("note: no signing_key configured, so a random demo key signed this "
                      "run's models (set STREAMML_SIGNING_KEY to keep and serve them later)")
    print_summary(console, summary)
    console.print(f"[green]done[/green] in {summary.elapsed_s:.1f}s. Try: streamml status "
                  f"{config.pipeline} · streamml tail {config.pipeline}.anomalies --json")
