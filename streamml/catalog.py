"""The topic catalog: declarative topic definitions (``topics/<role>.yaml``) and their payloads.

Each definition names a topic ``<pipeline>.<role>``, its partitions, retention,
cleanup policy, record key, payload model and extra Kafka config. The catalog
turns them into :class:`~streamml.log.base.TopicSpec` objects for a pipeline,
tells which role a topic name plays, and generates the JSON Schema of every
payload (``python -m streamml.catalog write-schemas``; ``check-schemas`` fails
when a checked-in schema is stale).

Where definitions are read from, by default: the repository's top-level
``topics/`` folder in a source checkout (editable install), else the copy
shipped inside the package as ``streamml/topicdefs/`` (a wheel).
``write-schemas`` keeps that copy in sync; ``check-schemas`` checks it.

>>> catalog = load_catalog()
>>> catalog.topic_name("taxi", "examples")
'taxi.examples'
>>> catalog.spec("taxi", "models").cleanup_policy
'compact'
>>> catalog.role_of("taxi.deadletter")
('taxi', 'deadletter')
>>> catalog.role_of("some-other-topic") is None
True
>>> from streamml.errors import ConfigError
>>> try:
...     catalog.topic_name("bad.name", "examples")
... except ConfigError as exc:
...     print(str(exc)[:60])
invalid pipeline name 'bad.name': use 1-200 letters, digits,
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streamml.errors import ConfigError
from streamml.log.base import TopicSpec

PIPELINE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
TOPIC_CHARS_RE = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TOPIC_LENGTH = 249  # Kafka's limit
PIPELINE_PLACEHOLDER = "{pipeline}"
#: TopicSpec fields; setting them again under ``config`` would be ambiguous.
RESERVED_CONFIG = frozenset({"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes"})

_PACKAGE_DIR = Path(__file__).resolve().parent
#: The copy of ``topics/`` shipped inside the package (package data of wheels).
PACKAGED_TOPICS_DIR: Path = _PACKAGE_DIR / "topicdefs"
SCHEMAS_SUBDIR = "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def validate_pipeline(name: str) -> str:
    """Return ``name`` if it is a valid pipeline name, else raise ``ConfigError``.

    >>> validate_pipeline("taxi-v2")
    'taxi-v2'
    """
    if not isinstance(name, str) or not PIPELINE_RE.fullmatch(name):
        raise ConfigError(
            f"invalid pipeline name {name!r}: use 1-200 letters, digits, '_' or '-', "
            "starting with a letter or digit (no '.': it separates pipeline and role "
            "in topic names)"
        )
    return name


class KeyDefinition(BaseModel):
    """What the record key of a topic is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    example: str | None = None


class TopicDefinition(BaseModel):
    """One ``topics/<role>.yaml`` file.

    >>> d = TopicDefinition(role="demo", name="{pipeline}.demo", description="d",
    ...                     payload="streamml.payloads.examples.Example",
    ...                     key=KeyDefinition(description="id"), partitions=2,
    ...                     cleanup_policy="delete", retention_ms=None,
    ...                     config={"max.message.bytes": 2097152})
    >>> d.spec("p").name, d.spec("p").config
    ('p.demo', {'max.message.bytes': '2097152'})
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Annotated[str, Field(pattern=ROLE_RE.pattern)]
    name: str
    """Name pattern; ``{pipeline}`` is replaced by the pipeline name."""
    description: str
    payload: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")]
    """Dotted path of the pydantic model of the record values."""
    key: KeyDefinition
    partitions: Annotated[int, Field(ge=1, le=10_000)]
    replication_factor: Annotated[int, Field(ge=1)] = 1
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: Annotated[int, Field(ge=1)] | None
    """Milliseconds; ``null`` keeps records forever. Required, so every file states it."""
    retention_bytes: Annotated[int, Field(ge=1)] | None = None
    segment_bytes: Annotated[int, Field(ge=1)] | None = None
    config: dict[str, str] = Field(default_factory=dict)
    """Extra Kafka topic config, passed verbatim (``max.message.bytes``...)."""
    internal: bool = False
    """Used by the runtime, not by users' applications."""
    producers: list[str] = Field(default_factory=list)
    consumers: list[str] = Field(default_factory=list)

    @field_validator("config", mode="before")
    @classmethod
    def _config_as_text(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if isinstance(v, bool):
                    out[k] = str(v).lower()
                else:
                    out[k] = v if isinstance(v, str) else str(v)
            return out
        return value

    @field_validator("config")
    @classmethod
    def _no_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(RESERVED_CONFIG & set(value))
        if clash:
            raise ValueError(f"set {', '.join(clash)} with the dedicated fields, not in config")
        return value

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        if value.count(PIPELINE_PLACEHOLDER) != 1:
            raise ValueError(f"name must contain {PIPELINE_PLACEHOLDER} exactly once: {value!r}")
        rest = value.replace(PIPELINE_PLACEHOLDER, "p")
        if not TOPIC_CHARS_RE.fullmatch(rest):
            raise ValueError(f"name may only use [a-zA-Z0-9._-] besides {PIPELINE_PLACEHOLDER}")
        return value

    def topic_name(self, pipeline: str) -> str:
        """The topic name for ``pipeline`` (``ConfigError`` if the pipeline name is invalid)."""
        name = self.name.replace(PIPELINE_PLACEHOLDER, validate_pipeline(pipeline))
        if len(name) > MAX_TOPIC_LENGTH:
            raise ConfigError(f"topic name {name!r} is longer than {MAX_TOPIC_LENGTH} characters")
        return name

    def spec(self, pipeline: str) -> TopicSpec:
        """The ``TopicSpec`` to create this role's topic for ``pipeline``."""
        return TopicSpec(
            name=self.topic_name(pipeline),
            partitions=self.partitions,
            replication_factor=self.replication_factor,
            cleanup_policy=self.cleanup_policy,
            retention_ms=self.retention_ms,
            retention_bytes=self.retention_bytes,
            segment_bytes=self.segment_bytes,
            config=dict(self.config),
        )

    def match(self, topic: str) -> str | None:
        """The pipeline name if ``topic`` is this role's topic of some pipeline, else ``None``."""
        prefix, suffix = self.name.split(PIPELINE_PLACEHOLDER)
        if len(topic) <= len(prefix) + len(suffix):
            return None
        if not (topic.startswith(prefix) and topic.endswith(suffix)):
            return None
        pipeline = topic[len(prefix) : len(topic) - len(suffix)]
        return pipeline if PIPELINE_RE.fullmatch(pipeline) else None

    def payload_model(self) -> type[BaseModel]:
        """Import and return the payload model class."""
        module_name, _, attr = self.payload.rpartition(".")
        try:
            model = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"role {self.role}: cannot import payload {self.payload}: {exc}"
            ) from exc
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"role {self.role}: payload {self.payload} is not a pydantic model")
        return model


class Catalog:
    """Every topic definition, by role. Build with :func:`load_catalog`.

    >>> cat = load_catalog()
    >>> "examples" in cat.roles and "checkpoints" in cat.roles
    True
    >>> [s.name for s in cat.specs("demo", ["schema", "examples"])]
    ['demo.schema', 'demo.examples']
    >>> cat.payload_model("deadletter").__name__
    'DeadLetter'
    """

    def __init__(self, definitions: Mapping[str, TopicDefinition], path: Path | None = None):
        self._defs = dict(sorted(definitions.items()))
        self.path = path
        """The folder the definitions were read from (``None`` if built in code)."""

    def __repr__(self) -> str:
        return f"Catalog(path={str(self.path)!r}, roles={self.roles!r})"

    @property
    def roles(self) -> list[str]:
        """Every role, sorted."""
        return list(self._defs)

    def definition(self, role: str) -> TopicDefinition:
        try:
            return self._defs[role]
        except KeyError:
            raise ConfigError(
                f"unknown topic role {role!r}; known: {', '.join(self.roles)}"
            ) from None

    def topic_name(self, pipeline: str, role: str) -> str:
        return self.definition(role).topic_name(pipeline)

    def spec(self, pipeline: str, role: str) -> TopicSpec:
        return self.definition(role).spec(pipeline)

    def specs(self, pipeline: str, roles: Sequence[str] | None = None) -> list[TopicSpec]:
        """Specs of ``roles`` (in the given order) or of every role, for ``pipeline``."""
        return [self.spec(pipeline, role) for role in (self.roles if roles is None else roles)]

    def payload_model(self, role: str) -> type[BaseModel]:
        return self.definition(role).payload_model()

    def role_of(self, topic_name: str) -> tuple[str, str] | None:
        """``(pipeline, role)`` if ``topic_name`` is a catalog topic, else ``None``."""
        for role, definition in self._defs.items():
            pipeline = definition.match(topic_name)
            if pipeline is not None:
                return pipeline, role
        return None

    def json_schema(self, role: str) -> dict[str, Any]:
        """The JSON Schema document of ``role``'s payload, as written to ``schemas/``."""
        definition = self.definition(role)
        schema = definition.payload_model().model_json_schema()
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"streamml:topics/{role}",
            "$comment": (
                f"Generated from {definition.payload} by `python -m streamml.catalog "
                "write-schemas`; do not edit."
            ),
            "x-streamml-topic": {
                "name": definition.name,
                "key": definition.key.description,
                "cleanup_policy": definition.cleanup_policy,
            },
            **schema,
        }

    def schema_text(self, role: str) -> str:
        """``json_schema(role)`` as checked-in text: 2-space indent, sorted keys, final newline."""
        text = json.dumps(self.json_schema(role), indent=2, sort_keys=True, ensure_ascii=False)
        return text + "\n"


def source_topics_dir() -> Path | None:
    """The repository's ``topics/`` folder when running from a source checkout, else ``None``."""
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "topics").is_dir():
        return root / "topics"
    return None


def default_topics_dir() -> Path:
    """``topics/`` of a source checkout, else the packaged copy ``streamml/topicdefs/``."""
    return source_topics_dir() or PACKAGED_TOPICS_DIR


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], Catalog]] = {}


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read every ``<role>.yaml`` in ``path`` (default: :func:`default_topics_dir`).

    Parsed catalogs are cached per folder and reused while no definition file
    changed (name, size and mtime), so hot paths may call this freely.

    >>> load_catalog() is load_catalog()
    True
    """
    folder = Path(path) if path is not None else default_topics_dir()
    if not folder.is_dir():
        raise ConfigError(f"topic definitions folder not found: {folder}")
    files = sorted(folder.glob("*.yaml"))
    try:
        stamp = tuple((f.name, (st := f.stat()).st_mtime_ns, st.st_size) for f in files)
    except OSError:
        stamp = ()
    cached = _CACHE.get(folder.resolve())
    if stamp and cached is not None and cached[0] == stamp:
        return cached[1]
    catalog = _parse_catalog(folder, files)
    if stamp:
        _CACHE[folder.resolve()] = (stamp, catalog)
    return catalog


def _parse_catalog(folder: Path, files: list[Path]) -> Catalog:
    definitions: dict[str, TopicDefinition] = {}
    for file in files:
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8"))
            definition = TopicDefinition.model_validate(raw)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read topic definition {file}: {exc}") from exc
        except ValidationError as exc:
            raise ConfigError(f"invalid topic definition {file}:\n{exc}") from exc
        if definition.role != file.stem:
            raise ConfigError(f"{file}: role {definition.role!r} must match the file name")
        definitions[definition.role] = definition
    if not definitions:
        raise ConfigError(f"no topic definitions (*.yaml) in {folder}")
    patterns: dict[str, str] = {}
    for role, definition in definitions.items():
        if definition.name in patterns:
            raise ConfigError(
                f"roles {patterns[definition.name]} and {role} share the name {definition.name!r}"
            )
        patterns[definition.name] = role
    return Catalog(definitions, folder)


if __name__ == "__main__":  # python -m streamml.catalog write-schemas|check-schemas
    from streamml.catalog_files import main

    sys.exit(main())
