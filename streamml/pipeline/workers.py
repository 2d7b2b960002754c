"""One pipeline component as its own faust worker group on Kafka (the scale-out path).

``streamml run PIPELINE -c NAME`` and ``streamml worker PIPELINE -c NAME``
build the pipeline from its definition (the same file every other process of
the pipeline builds) and host the processor named ``NAME`` with
:class:`~streamml.runtime.faust_host.FaustHost`, so a worker needs nothing but
the pipeline file: the Trainer's user module, the Evaluator's gate, the
Pusher's key all come from it. The built-in components keep one state over all
their input partitions, so they run with ``shared_state``: checkpoints under
the same key as the embedded runner's (a component moves between hosts and
resumes), one active worker per group. Missing topics are created from the
catalog, so workers may start before the in-process part of the pipeline.

>>> from streamml.pipeline import load_pipeline
>>> p = load_pipeline("examples/drift_pipeline.py", name="docs")
>>> component_host(p, "trainer", Settings(broker="embedded://log"))
Traceback (most recent call last):
...
streamml.errors.ConfigError: a pipeline component as a worker (-c trainer) needs --broker kafka://HOST:PORT, not embedded://log
>>> component_host(p, "ingest/penguins", Settings(broker="kafka://h:1"))
Traceback (most recent call last):
...
streamml.errors.ConfigError: ingest/penguins is a connector, not a processor: run it in-process (streamml run PIPELINE --skip the worker components)
"""  # noqa: E501

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from streamml.errors import ConfigError
from streamml.log import parse_broker_url
from streamml.pipeline.components import Step
from streamml.pipeline.graph import Pipeline
from streamml.settings import Settings

if TYPE_CHECKING:
    from streamml.runtime.faust_host import FaustHost


def component_host(pipeline: Pipeline, name: str, settings: Settings, *,
                   workdir: str | Path | None = None, web_port: int | None = None,
                   batch_size: int = 500) -> FaustHost:
    """A :class:`FaustHost` for the processor ``name`` of ``pipeline`` (shared state)."""
    if parse_broker_url(settings.broker)[0] != "kafka":
        raise ConfigError(f"a pipeline component as a worker (-c {name}) needs --broker "
                          f"kafka://HOST:PORT, not {settings.broker}")
    step = pipeline.component(name)
    if not isinstance(step, Step):
        raise ConfigError(f"{name} is a connector, not a processor: run it in-process "
                          "(streamml run PIPELINE --skip the worker components)")
    from streamml.runtime.checkpoint import hmac_key_from
    from streamml.runtime.faust_host import FaustHost

    where = Path(workdir) if workdir else (
        Path(settings.state_dir) / "faust" / f"{pipeline.name}.{name}")
    return FaustHost(step.processor, settings, pipeline=pipeline.name, workdir=where,
                     web_port=web_port, batch_size=batch_size,
                     hmac_key=hmac_key_from(settings), shared_state=True, create_inputs=True)
