"""``Pipeline``: components wired by their topics, checked when it is built.

In the spirit of ``tfx.dsl.Pipeline``: list the components, the pipeline
derives the graph from the topics each one consumes and produces (an edge
from every producer of a topic to every consumer of it) and orders them
topologically. Wiring mistakes fail at build time with
:class:`~streamml.errors.ConfigError`:

* **missing upstream**: a component reads a topic nothing in the pipeline
  writes, that is neither ``optional`` for it nor declared ``external``;
* **cycle**: components that feed each other through non-feedback inputs;
* **incompatible payload**: a producer and a consumer (or the catalog role of
  the topic) disagree on the payload model of a topic;
* a topic outside the pipeline's ``<name>.`` namespace that is not external,
  and duplicate component names.

Settings (the ``settings`` argument: a :class:`~streamml.settings.Settings`
or a mapping of overrides) resolve with the documented precedence: code
(what is passed here) > ``STREAMML_*`` environment variables > config file.

>>> from streamml.statistics.processor import StatisticsGen
>>> from streamml.validation import SchemaGen
>>> stats = StatisticsGen("p.examples", "p.statistics", pipeline="p")
>>> schema = SchemaGen("p.examples", "p.schema", "p.anomalies")
>>> p = Pipeline(name="p", components=[schema, stats], external=["p.examples"],
...              settings={"broker": "embedded:///tmp/x"})
>>> [c.name for c in p.order], p.settings.broker
(['schema_gen', 'statistics_gen'], 'embedded:///tmp/x')
>>> try:
...     Pipeline(name="p", components=[stats])
... except ConfigError as exc:
...     print(exc)
pipeline p: statistics_gen reads p.examples, but no component produces it (add a connector, or declare it in external=[...])
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamml.catalog import validate_pipeline
from streamml.connectors.base import SourceConnector
from streamml.errors import ConfigError
from streamml.pipeline.components import Component, Connector, Payload, Step, role_payload
from streamml.processors.base import Processor
from streamml.settings import Settings, load_settings

if TYPE_CHECKING:
    from streamml.pipeline.loader import PipelineOrigin

ComponentLike = Component | Processor | SourceConnector


def _payload_name(model: Payload) -> str:
    return "any JSON" if model is None else model.__name__


class Pipeline:
    """A named set of components wired by topics (see the module docstring).

    ``external`` lists topics written outside the pipeline (another
    pipeline, users' applications). ``components`` may hold
    :class:`~streamml.pipeline.components.Step`/``Connector`` objects, bare
    processors or source connectors (wrapped for you).
    """

    def __init__(
        self,
        name: str,
        components: Sequence[ComponentLike],
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        external: Iterable[str] = (),
        description: str = "",
    ) -> None:
        self.name = validate_pipeline(name)
        self.description = description
        self.settings = (settings if isinstance(settings, Settings)
                         else load_settings(**dict(settings or {})))
        self.external = frozenset(external)
        self.components: list[Component] = [self._wrap(c) for c in components]
        if not self.components:
            raise ConfigError(f"pipeline {name}: it has no components")
        names = [c.name for c in self.components]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"pipeline {name}: component names must be unique, "
                              f"{', '.join(dupes)} appear more than once")
        self.producers: dict[str, list[Component]] = {}
        self.consumers: dict[str, list[Component]] = {}
        for c in self.components:
            for topic in c.produces:
                self.producers.setdefault(topic, []).append(c)
            for topic in c.consumes:
                self.consumers.setdefault(topic, []).append(c)
        self._check_namespace()
        self._check_upstream()
        self._check_payloads()
        self.order: list[Component] = self._toposort()
        #: How to build this pipeline again in another process (set by ``load_pipeline``).
        self.origin: PipelineOrigin | None = None

    # -- building --------------------------------------------------------------
    def _wrap(self, component: ComponentLike) -> Component:
        if isinstance(component, Component):
            return component
        if isinstance(component, Processor):
            return Step(component)
        if isinstance(component, SourceConnector):
            return Connector(component, pipeline=self.name)
        raise ConfigError(f"pipeline {self.name}: {component!r} is not a component, a "
                          "processor or a source connector")

    def _check_namespace(self) -> None:
        prefix = f"{self.name}."
        for c in self.components:
            for topic in (*c.consumes, *c.produces):
                if not topic.startswith(prefix) and topic not in self.external:
                    raise ConfigError(
                        f"pipeline {self.name}: {c.name} uses topic {topic}, outside the "
                        f"pipeline's {prefix}* topics (built for another pipeline? declare it "
                        "in external=[...] if it is meant)")

    def _check_upstream(self) -> None:
        for c in self.components:
            for topic in c.consumes:
                if topic in self.producers or topic in self.external or topic in c.optional:
                    continue
                raise ConfigError(
                    f"pipeline {self.name}: {c.name} reads {topic}, but no component produces "
                    "it (add a connector, or declare it in external=[...])")

    def _check_payloads(self) -> None:
        for topic in sorted({*self.producers, *self.consumers}):
            declared: list[tuple[str, Payload]] = []
            catalog = role_payload(topic)
            if catalog is not None:
                declared.append((f"the catalog role of {topic}", catalog))
            for c in self.producers.get(topic, []):
                declared.append((f"{c.name} produces", c.produces[topic]))
            for c in self.consumers.get(topic, []):
                declared.append((f"{c.name} consumes", c.consumes[topic]))
            typed = [(who, model) for who, model in declared if model is not None]
            for who, model in typed[1:]:
                first_who, first = typed[0]
                if model is not first:
                    raise ConfigError(
                        f"pipeline {self.name}: incompatible payload on {topic}: "
                        f"{first_who} {_payload_name(first)}, but {who} {_payload_name(model)}")

    def edges(self) -> list[tuple[str, str, str]]:
        """``(producer, topic, consumer)`` for every graph edge (feedback inputs excluded)."""
        out: list[tuple[str, str, str]] = []
        for c in self.components:
            for topic in c.consumes:
                if topic in c.feedback:
                    continue
                out.extend((p.name, topic, c.name) for p in self.producers.get(topic, [])
                           if p is not c)
        return out

    def _toposort(self) -> list[Component]:
        by_name = {c.name: c for c in self.components}
        incoming: dict[str, set[str]] = {c.name: set() for c in self.components}
        for src, _, dst in self.edges():
            incoming[dst].add(src)
        order: list[Component] = []
        ready = [c.name for c in self.components if not incoming[c.name]]
        remaining = {n: set(s) for n, s in incoming.items()}
        while ready:
            current = ready.pop(0)
            order.append(by_name[current])
            del remaining[current]
            for name in [c.name for c in self.components]:
                if name in remaining and current in remaining[name]:
                    remaining[name].discard(current)
                    if not remaining[name]:
                        ready.append(name)
        if remaining:
            raise ConfigError(f"pipeline {self.name}: cycle: {self._cycle(remaining)} (mark an "
                              "intended loop's input as feedback=...)")
        return order

    def _cycle(self, remaining: Mapping[str, set[str]]) -> str:
        topics = {(s, d): t for s, t, d in self.edges()}
        node = next(iter(remaining))
        path: list[str] = []
        while node not in path:
            path.append(node)
            node = sorted(remaining[node])[0]
        loop = path[path.index(node):] + [node]
        loop.reverse()  # producer -> consumer
        parts = [loop[0]]
        for a, b in zip(loop, loop[1:], strict=False):
            parts.append(f"-({topics[(a, b)]})-> {b}")
        return " ".join(parts)

    # -- views -------------------------------------------------------------------
    @property
    def processors(self) -> list[Processor]:
        """The processors, in topological order."""
        return [c.processor for c in self.order if isinstance(c, Step)]

    @property
    def connectors(self) -> list[Connector]:
        return [c for c in self.order if isinstance(c, Connector)]

    @property
    def topics(self) -> list[str]:
        """Every topic the pipeline touches, sorted."""
        return sorted({*self.producers, *self.consumers} - self.external)

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise ConfigError(f"pipeline {self.name} has no component {name!r}; it has "
                          f"{', '.join(c.name for c in self.components)}")

    def describe(self) -> str:
        """One line per component: ``name: inputs -> outputs``."""
        lines = []
        for c in self.order:
            ins = ", ".join(t for t in c.consumes) or "-"
            outs = ", ".join(t for t in c.produces) or "-"
            lines.append(f"{c.name} ({c.kind}): {ins} -> {outs}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, components={[c.name for c in self.order]})"
