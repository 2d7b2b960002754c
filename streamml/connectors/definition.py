"""Connector definitions: one YAML file per connector in the top-level ``connectors/`` folder.

Like a Kafka Connect property file, a definition names the connector, its
source ``type`` and that type's ``options``, plus how ExampleGen treats its
records (``example``) and how the ingest loop runs it (``ingest``)::

    name: taxi-file
    type: file
    pipeline: taxi                  # optional; default: the pipeline setting
    description: The bundled Chicago taxi trips.
    options: {path: "{streamml_data}/taxi.csv", format: csv, mode: once}
    example: {event_time: trip_start_timestamp, event_time_unit: s}
    ingest: {batch_size: 10000, rate: null}

Relative paths in ``options`` (``path``, ``database``) are relative to the
folder that holds ``connectors/`` (the project root); ``{streamml_data}`` is
the data folder shipped with streamml. Definitions can also be built in Python:
``ConnectorDefinition(name="x", type="file", options={"path": "/data/x.csv"})``.

>>> d = ConnectorDefinition(name="t", type="file", options={"path": "/tmp/x.csv"},
...                         example={"label": "tips"})
>>> d.build_source().describe(), d.build_examplegen("demo").label
('file /tmp/x.csv (auto, once)', 'tips')
>>> {"taxi-file", "kafka-events", "http-ingest", "agrawal-drift"} <= {
...     c.name for c in list_connectors()}
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamml.connectors.base import SourceConnector, build_source
from streamml.connectors.examplegen import ExampleGen, TimeUnit
from streamml.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = _PACKAGE_DIR / "data"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
PATH_OPTIONS = ("path", "database")


class ExampleSettings(BaseModel):
    """How ExampleGen turns this connector's records into examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = None
    """Column whose value is the example id (default: source and position)."""
    event_time: str | None = None
    """Column holding the event time (default: the ingest time)."""
    event_time_unit: TimeUnit = "auto"
    label: str | None = None
    splits: dict[str, Annotated[int, Field(ge=1)]] | None = None
    """Split name → hash buckets, in order (default eval 1, train 2: train:eval 2:1)."""
    max_record_bytes: Annotated[int, Field(ge=1)] = 1 << 20


class IngestSettings(BaseModel):
    """How the ingest loop runs this connector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    rate: Annotated[float, Field(gt=0)] | None = None
    """Records per second (token bucket); ``None``: as fast as the log takes them."""


class ConnectorDefinition(BaseModel):
    """One connector: source type and options, ExampleGen and ingest settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    type: str
    pipeline: str | None = None
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    example: ExampleSettings = Field(default_factory=ExampleSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    base_dir: str | None = None
    """Folder that relative paths in ``options`` are relative to (set when loaded from a file)."""
    file: str | None = None

    def resolved_options(self, **overrides: Any) -> dict[str, Any]:
        """``options`` with paths resolved and ``overrides`` (not ``None``) applied."""
        opts = dict(self.options)
        for key in PATH_OPTIONS:
            value = opts.get(key)
            if isinstance(value, str):
                value = value.replace("{streamml_data}", str(DATA_DIR))
                if self.base_dir is not None and not os.path.isabs(value):
                    value = str(Path(self.base_dir) / value)
                opts[key] = value
        opts.update({k: v for k, v in overrides.items() if v is not None})
        return opts

    def build_source(self, **overrides: Any) -> SourceConnector:
        """The source connector (``overrides`` replace options, e.g. ``mode="follow"``)."""
        opts = self.resolved_options(**overrides)
        if self.type in ("file", "kafka", "http", "synthetic"):
            opts.setdefault("max_record_bytes", self.example.max_record_bytes)
        return build_source(self.type, self.name, opts)

    def build_examplegen(self, pipeline: str) -> ExampleGen:
        e = self.example
        return ExampleGen(self.name, pipeline=pipeline, key=e.key, event_time=e.event_time,
                          event_time_unit=e.event_time_unit, label=e.label, splits=e.splits,
                          max_record_bytes=e.max_record_bytes)


def source_connectors_dir() -> Path | None:
    """The repository's ``connectors/`` folder in a source checkout, else ``None``."""
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "connectors").is_dir():
        return root / "connectors"
    return None


def default_connectors_dir() -> Path:
    """``$STREAMML_CONNECTORS_DIR``, else ``./connectors``, else the checkout's ``connectors/``."""
    env = os.environ.get("STREAMML_CONNECTORS_DIR")
    if env:
        return Path(env)
    here = Path("connectors")
    if here.is_dir():
        return here
    return source_connectors_dir() or here


def read_definition(path: str | Path) -> ConnectorDefinition:
    """Parse one definition file (``ConfigError`` with the file name when invalid)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read connector definition {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"connector definition {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"connector definition {p} must be a mapping")
    raw.setdefault("base_dir", str(p.resolve().parent.parent))
    raw["file"] = str(p)
    try:
        definition = ConnectorDefinition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"invalid connector definition {p}: {where}: {first['msg']}") from exc
    if definition.name != p.stem:
        raise ConfigError(f"{p}: connector name {definition.name!r} must match the file name")
    return definition


def list_connectors(directory: str | Path | None = None) -> list[ConnectorDefinition]:
    """Every definition (``*.yaml``/``*.yml``) in ``directory`` (default: see above), by name."""
    folder = Path(directory) if directory is not None else default_connectors_dir()
    if not folder.is_dir():
        raise ConfigError(f"connector definitions folder not found: {folder}")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return sorted((read_definition(f) for f in files), key=lambda d: d.name)


def load_connector(name_or_path: str, directory: str | Path | None = None) -> ConnectorDefinition:
    """A definition by name (from the connectors folder) or by path to its file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return read_definition(p)
    folder = Path(directory) if directory is not None else default_connectors_dir()
    for suffix in (".yaml", ".yml"):
        candidate = folder / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return read_definition(candidate)
    known = [d.name for d in list_connectors(folder)] if folder.is_dir() else []
    raise ConfigError(
        f"no connector {name_or_path!r} in {folder}"
        + (f"; known: {', '.join(known)}" if known else "")
    )
