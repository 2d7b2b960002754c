"""Continuous validation of your own data: statistics, schema, anomaly and drift alerts.

    file (or any connector) → ExampleGen → <p>.examples
      → StatisticsGen (count windows of ``window``, one split) → <p>.statistics ─┐
      → SchemaGen (your schema file, or inferred from the first window) ───────┼→
      → ExampleValidator → <p>.anomalies (flagged) / <p>.deadletter (quarantined)

The live counterpart of ``streamml validate FILE --schema S --reference REF``,
on the same code path: the per-example checks are the same, and each closed
window is tested against the previous window and, with ``reference``, against
the reference file's statistics (read as ``validate`` reads it). No model and
no signing key::

    streamml run streamml.examples.validation_pipeline -p checks --reset \\
        -o path=trips.csv -o schema=schema.yaml -o reference=train.csv
    streamml alerts -p checks

``path`` is a CSV, JSON Lines or Parquet file, a directory or a glob
(:class:`~streamml.connectors.file.FileSource`); ``follow=true`` keeps reading
appended lines and new files (``tail -F``) until Ctrl-C. ``connector=NAME``
(a definition in ``connectors/``, or a YAML path) replaces ``path`` for any
other source. A count window that the input does not fill is not tested: pick
``window`` well below the number of rows.

>>> from streamml.settings import load_settings
>>> p = build_pipeline(load_settings(config_file=None), path="trips.csv", window=500,
...                    follow=True)
>>> [c.name for c in p.components]
['ingest/trips', 'statistics_gen', 'schema_gen', 'example_validator']
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.file import FileSource
from streamml.errors import ConfigError
from streamml.pipeline import Connector, Pipeline
from streamml.settings import Settings
from streamml.statistics.processor import StatisticsGen
from streamml.validation import ExampleValidator, SchemaGen
from streamml.validation.drift import DriftConfig
from streamml.validation.files import reference_window
from streamml.validation.schema import load_schema


def _source_name(path: str) -> str:
    """``data/trips.csv`` → ``trips``; a glob or directory → its last plain part.

    >>> _source_name("data/trips.csv"), _source_name("logs/*.jsonl"), _source_name("in/")
    ('trips', 'logs', 'in')
    """
    parts = [p for p in Path(path).parts if not any(c in p for c in "*?[")]
    name = Path(parts[-1]).stem if parts else "file"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "file"


def _check_options(*, path: str | None, connector: str | None, window: object,
                   policy: object, alpha: object, flags: dict[str, object],
                   examplegen: dict[str, str | None]) -> None:
    """One clear error line for an option ``-o`` got wrong (values arrive as YAML scalars).

    >>> _check_options(path="a.csv", connector=None, window=0, policy="flag", alpha=None,
    ...                flags={}, examplegen={})
    Traceback (most recent call last):
    ...
    streamml.errors.ConfigError: window must be a positive number of examples, not 0
    """
    if (path is None) == (connector is None):
        raise ConfigError("the validation pipeline reads one source: give -o path=FILE "
                          "or -o connector=NAME")
    if type(window) is not int or window < 1:
        raise ConfigError(f"window must be a positive number of examples, not {window!r}")
    if policy not in ("flag", "quarantine"):
        raise ConfigError(f"policy must be flag or quarantine, not {policy!r}")
    if alpha is not None and not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ConfigError(f"alpha must be a p-value threshold in (0, 1), not {alpha!r}")
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}")
    if connector is not None and any(v is not None for v in examplegen.values()):
        raise ConfigError("event_time and label go in the connector's definition "
                          "(its example: section) when -o connector= is used")


def build_pipeline(
    settings: Settings,
    *,
    name: str = "validate",
    path: str | None = None,
    connector: str | None = None,
    schema: str | None = None,
    reference: str | None = None,
    window: int = 1000,
    follow: bool = False,
    compare_previous: bool = True,
    policy: Literal["flag", "quarantine"] = "flag",
    auto_evolve: bool = False,
    event_time: str | None = None,
    label: str | None = None,
    alpha: float | None = None,
    rate: float | None = None,
    batch_size: int = 1000,
) -> Pipeline:
    """The validation pipeline named ``name`` over ``path`` (or ``connector``).

    ``schema``: a schema file (YAML/JSON, e.g. from ``streamml schema infer``), published
    as it is (its own version); without it SchemaGen infers version 1 from the first
    ``window`` examples. ``reference``: a file whose statistics every window is tested against
    (drift from training data). ``compare_previous``: also test each window against the
    one before it. ``alpha``: the drift tests' p-value threshold (default 1e-4).
    ``event_time``/``label``: ExampleGen's columns for the event time and the label.
    """
    _check_options(path=path, connector=connector, window=window, policy=policy,
                   alpha=alpha, flags={"follow": follow, "compare_previous": compare_previous,
                                       "auto_evolve": auto_evolve},
                   examplegen={"event_time": event_time, "label": label})
    p = name
    if path is not None:
        source = FileSource(name=_source_name(path), path=str(path),
                            mode="follow" if follow else "once")
        if not follow and not source.matching_files():
            raise ConfigError(f"no file matches {path} (with -o follow=true the pipeline "
                              "waits for files to appear)")
        ingest = Connector(source, pipeline=p, rate=rate, batch_size=batch_size,
                           examplegen=ExampleGen(source.name, pipeline=p,
                                                 event_time=event_time, label=label))
    else:
        ingest = Connector(str(connector), pipeline=p, rate=rate, batch_size=batch_size)
    initial = load_schema(schema) if schema else None
    ref = None
    if reference:
        if initial is None:
            raise ConfigError("-o reference=FILE needs -o schema=FILE: the reference is "
                              "read by the schema's types, as `streamml validate` does")
        ref = reference_window(reference, initial, pipeline=p)
    drift = DriftConfig() if alpha is None else DriftConfig(alpha=alpha)
    return Pipeline(
        name=p,
        description=f"validation of {path or connector}",
        settings=settings,
        components=[
            ingest,
            StatisticsGen(f"{p}.examples", f"{p}.statistics", pipeline=p, count_window=window,
                          splits="all", cumulative_every=None),
            SchemaGen(f"{p}.examples", f"{p}.schema", f"{p}.anomalies", pipeline=p,
                      infer_from=window, initial=initial, auto_evolve=auto_evolve),
            # schema=initial: examples are checked from the first one, not from when
            # SchemaGen's record of it arrives; later versions come from the topic.
            ExampleValidator(f"{p}.examples", f"{p}.anomalies", pipeline=p, schema=initial,
                             schema_topic=f"{p}.schema", statistics_topic=f"{p}.statistics",
                             policy=policy, reference=ref, compare_previous=compare_previous,
                             example_window=window, drift=drift),
        ],
    )
