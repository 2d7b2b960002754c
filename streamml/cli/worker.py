"""``streamml worker PROCESSOR``: run one processor as a faust worker on Kafka."""

from __future__ import annotations

from pathlib import Path

import click

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.log import parse_broker_url


@click.command("worker")
@click.argument("processor", metavar="PROCESSOR")
@click.option("--component", "-c", default=None, metavar="NAME",
              help="PROCESSOR is a pipeline (module:attr or a .py file): run its component "
                   "NAME (the same as streamml run PIPELINE -c NAME).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="With -c: keyword argument of the pipeline's build function, as for "
                   "streamml run -o (e.g. -o mini_batch=500). Repeatable.")
@click.option("--pipeline", "-p", default=None,
              help="Pipeline name, the <p> of <p>.<role> topics. Default: the pipeline setting "
                   "(with -c: the pipeline definition's name).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Directory for faust's data. Default: <state_dir>/faust/<pipeline>.<name>.")
@click.option("--web-port", type=int, default=None,
              help="Serve faust's web status on 127.0.0.1:N. Default: no web server.")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True,
              help="Most records processed (and checkpointed) per batch.")
@click.option("--loglevel", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@pass_state
def command(state: CliState, processor: str, component: str | None, options: tuple[str, ...],
            pipeline: str | None, workdir: str | None, web_port: int | None, batch_size: int,
            loglevel: str) -> None:
    """Run PROCESSOR as a faust-streaming worker on Kafka (kafka:// broker only).

    PROCESSOR is module:callable, a Processor class or factory that takes no
    arguments, e.g. mypkg.counting:make (the module may be a .py file). Workers
    started with the same processor form one consumer group,
    <pipeline>.<processor name>, and split the input partitions, with state
    per input partition; when one stops or dies, the others take over its
    partitions.

    With -c NAME, PROCESSOR is a pipeline definition instead and the worker
    runs its component NAME, built from that definition (user module, gate,
    signing key and all): streamml worker examples/taxi_pipeline.py -c trainer.
    Give it the same -o options as the streamml run of the rest of the pipeline.
    Pipeline components keep one state over all their input partitions (one
    active worker per component).

    State is checkpointed, with the next input offsets, to
    <pipeline>.checkpoints after every batch, before faust commits: a
    restarted or replacement worker resumes exactly where the checkpoint says
    (outputs at least once, state exactly once). SIGTERM or Ctrl-C stops the
    worker cleanly.
    """
    settings = state.settings
    if options and component is None:
        raise ConfigError("-o/--option needs -c: options go to a pipeline's build function")
    scheme, _ = parse_broker_url(settings.broker)
    if scheme != "kafka":
        raise ConfigError(
            f"worker needs a kafka:// broker (got {settings.broker}); "
            "use --broker kafka://HOST:PORT or STREAMML_BROKER"
        )
    if component is not None:
        from streamml.cli.run import parse_options
        from streamml.pipeline import load_pipeline
        from streamml.pipeline.workers import component_host

        definition = load_pipeline(processor, settings, name=pipeline,
                                   **parse_options(options))
        host = component_host(definition, component, settings, workdir=workdir,
                              web_port=web_port, batch_size=batch_size)
    else:
        from streamml.runtime.checkpoint import hmac_key_from
        from streamml.runtime.faust_host import FaustHost
        from streamml.usercode import load_processor

        proc = load_processor(processor)
        pipeline = pipeline or settings.pipeline
        where = Path(workdir) if workdir else (
            Path(settings.state_dir) / "faust" / f"{pipeline}.{proc.processor_name}"
        )
        host = FaustHost(proc, settings, pipeline=pipeline, workdir=where, web_port=web_port,
                         batch_size=batch_size, hmac_key=hmac_key_from(settings))
    code = host.run(loglevel=loglevel.upper())
    if code:
        raise click.exceptions.Exit(code)
