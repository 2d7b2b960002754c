"""Pipeline components: processors and connectors, with the topics and payloads they use.

A :class:`Component` declares the topics it **consumes** and **produces**, each
with the pydantic payload model it expects there (``None``: any JSON). The
:class:`~streamml.pipeline.graph.Pipeline` derives the graph from those
declarations. Two kinds of inputs do not count as graph edges:

* ``optional`` inputs may have no producer in the pipeline (the Trainer's
  ``<p>.labels``: delayed labels come from users' applications, if at all);
* ``feedback`` inputs close an intended loop (the Trainer listens to the
  Evaluator's drift actions on ``<p>.metadata``), so they are not cycles.

The built-in components declare their payloads (:func:`declare`); any other
:class:`~streamml.processors.base.Processor` gets the catalog payload of each
``<p>.<role>`` topic it names, or ``None`` for topics outside the catalog.

>>> from streamml.statistics.processor import StatisticsGen
>>> step = Step(StatisticsGen("p.examples", "p.statistics", pipeline="p"))
>>> step.name, [(t, m.__name__) for t, m in step.consumes.items()]
('statistics_gen', [('p.examples', 'Example')])
>>> [(t, m.__name__) for t, m in step.produces.items()]
[('p.statistics', 'StatisticsWindow')]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from streamml.connectors.base import SourceConnector
from streamml.connectors.definition import ConnectorDefinition, load_connector
from streamml.connectors.examplegen import ExampleGen
from streamml.errors import ConfigError
from streamml.processors.base import Processor

Payload = type[BaseModel] | None


def role_payload(topic: str) -> Payload:
    """The catalog payload model of ``<p>.<role>`` (``None`` for other topics).

    >>> role_payload("taxi.anomalies").__name__, role_payload("elsewhere") is None
    ('Alert', True)
    """
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    found = catalog.role_of(topic)
    return None if found is None else catalog.payload_model(found[1])


def _payloads(topics: Mapping[str, str | None]) -> dict[str, Payload]:
    """``topic -> role`` (the role whose payload the component expects) as ``topic -> model``."""
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    return {t: (catalog.payload_model(role) if role else None)
            for t, role in topics.items() if t}


@dataclass
class Ports:
    """What a processor reads and writes: ``topic -> payload role`` plus edge kinds."""

    consumes: dict[str, str | None]
    produces: dict[str, str | None]
    optional: frozenset[str] = frozenset()
    feedback: frozenset[str] = frozenset()


Roles = dict[str, str | None]


def _statistics_gen(p: Any) -> Ports:
    consumes: Roles = {p.examples_topic: "examples"}
    if p.schema_topic:
        consumes[p.schema_topic] = "schema"
    return Ports(consumes, {p.statistics_topic: "statistics"},
                 optional=frozenset({p.schema_topic} - {None}))


def _schema_gen(p: Any) -> Ports:
    return Ports({p.examples_topic: "examples"},
                 {p.schema_topic: "schema", p.anomalies_topic: "anomalies"})


def _validator(p: Any) -> Ports:
    consumes: Roles = {p.examples_topic: "examples"}
    if p.schema_topic:
        consumes[p.schema_topic] = "schema"
    if p.statistics_topic:
        consumes[p.statistics_topic] = "statistics"
    produces: Roles = {p.anomalies_topic: "anomalies", p.deadletter_topic: "deadletter"}
    if p.validated_topic:
        produces[p.validated_topic] = "examples"
    return Ports(consumes, produces)


def _trainer(p: Any) -> Ports:
    consumes: Roles = {p.examples_topic: "examples", p.labels_topic: "labels"}
    feedback: set[str] = set()
    if p.listen_actions:
        consumes[p.actions_topic] = "metadata"
        feedback.add(p.actions_topic)
    return Ports(consumes, {p.candidates_topic: "candidates"},
                 optional=frozenset({p.labels_topic, *feedback}), feedback=frozenset(feedback))


def _evaluator(p: Any) -> Ports:
    return Ports({p.examples_topic: "examples", p.candidates_topic: "candidates",
                  p.anomalies_topic: "anomalies"},
                 {p.evaluations_topic: "evaluations", p.metadata_topic: "metadata"},
                 optional=frozenset({p.anomalies_topic}))


def _pusher(p: Any) -> Ports:
    return Ports({p.candidates_topic: "candidates", p.evaluations_topic: "evaluations"},
                 {p.models_topic: "models"})


def _lineage_recorder(p: Any) -> Ports:  # every artifact topic is optional
    return Ports(dict(p.topics), {p.metadata_topic: "metadata", p.deadletter_topic: "deadletter"},
                 optional=frozenset(p.topics))


def _lineage_materializer(p: Any) -> Ports:
    return Ports({p.topic: "metadata"}, {p.deadletter_topic: "deadletter"},
                 optional=frozenset({p.topic}))


#: Port declarations of the built-in processors, by class name.
DECLARED: dict[str, Callable[[Any], Ports]] = {
    "LineageRecorder": _lineage_recorder,
    "LineageMaterializer": _lineage_materializer,
    "StatisticsGen": _statistics_gen,
    "SchemaGen": _schema_gen,
    "ExampleValidator": _validator,
    "Trainer": _trainer,
    "Evaluator": _evaluator,
    "Pusher": _pusher,
}


def declare(processor: Processor) -> Ports:
    """The :class:`Ports` of ``processor``: declared for built-ins, else from the catalog."""
    for cls in type(processor).__mro__:
        if cls.__name__ in DECLARED:
            return DECLARED[cls.__name__](processor)
    from streamml.catalog import load_catalog

    catalog = load_catalog()

    def role(topic: str) -> str | None:
        found = catalog.role_of(topic)
        return found[1] if found else None

    return Ports({t: role(t) for t in processor.inputs}, {t: role(t) for t in processor.outputs})


@dataclass
class Component:
    """A node of the pipeline graph (see the module docstring)."""

    name: str
    consumes: dict[str, Payload] = field(default_factory=dict)
    produces: dict[str, Payload] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    feedback: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return "component"


class Step(Component):
    """A :class:`~streamml.processors.base.Processor` in a pipeline.

    ``consumes``/``produces`` override the declared payload roles of topics
    (``topic -> role``), for processors the pipeline cannot introspect.
    """

    def __init__(self, processor: Processor, *, name: str | None = None,
                 consumes: Mapping[str, str | None] | None = None,
                 produces: Mapping[str, str | None] | None = None,
                 optional: frozenset[str] | set[str] = frozenset(),
                 feedback: frozenset[str] | set[str] = frozenset()) -> None:
        ports = declare(processor)
        ports.consumes.update(consumes or {})
        ports.produces.update(produces or {})
        super().__init__(
            name=name or processor.processor_name,
            consumes=_payloads(ports.consumes),
            produces=_payloads(ports.produces),
            optional=frozenset(ports.optional | set(optional)),
            feedback=frozenset(ports.feedback | set(feedback)),
        )
        if name is not None and name != processor.processor_name:
            raise ConfigError(f"step name {name!r} must be the processor's name "
                              f"{processor.processor_name!r} (it names checkpoints and groups)")
        self.processor = processor

    @property
    def kind(self) -> str:
        return "processor"


class Connector(Component):
    """A source connector and its ExampleGen: writes ``<p>.examples`` and ``<p>.deadletter``.

    Give a :class:`~streamml.connectors.base.SourceConnector`, a
    :class:`~streamml.connectors.definition.ConnectorDefinition` or the name of
    one in ``connectors/`` (``"taxi-file"``). ``rate`` (records/s) and
    ``batch_size`` control the ingest loop.

    >>> c = Connector("taxi-file", pipeline="taxi")
    >>> c.name, sorted(c.produces)
    ('ingest/taxi-file', ['taxi.deadletter', 'taxi.examples'])
    """

    def __init__(self, source: SourceConnector | ConnectorDefinition | str, *, pipeline: str,
                 examplegen: ExampleGen | None = None, rate: float | None = None,
                 batch_size: int | None = None, max_records: int | None = None) -> None:
        definition = load_connector(source) if isinstance(source, str) else source
        if isinstance(definition, ConnectorDefinition):
            self.source: SourceConnector = definition.build_source()
            examplegen = examplegen or definition.build_examplegen(pipeline)
            rate = rate if rate is not None else definition.ingest.rate
            batch_size = batch_size or definition.ingest.batch_size
        else:
            self.source = definition
        self.examplegen = examplegen or ExampleGen(self.source.name, pipeline=pipeline)
        self.rate = rate
        self.batch_size = batch_size or 1000
        self.max_records = max_records
        self.pipeline = pipeline
        super().__init__(
            name=f"ingest/{self.source.name}",
            produces=_payloads({f"{pipeline}.examples": "examples",
                                f"{pipeline}.deadletter": "deadletter"}),
        )

    @property
    def kind(self) -> str:
        return "connector"
