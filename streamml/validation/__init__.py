"""Continuous validation: SchemaGen, ExampleValidator, drift metrics (TFDV's, done on a stream).

Modules, one job each:

* :mod:`~streamml.validation.schema` — schema inference (first N examples or a
  CSV/Parquet file), the YAML/JSON schema file, schema evolution;
* :mod:`~streamml.validation.checks` — per-example anomalies against a schema;
* :mod:`~streamml.validation.drift` — TFDV-compatible L-infinity and
  Jensen–Shannon divergence, PSI, and the default sample-size-aware tests
  (KS on quantile sketches, chi-square on value counts);
* :mod:`~streamml.validation.compare` — per-window drift, skew, presence and size checks;
* :mod:`~streamml.validation.alerts` — one alert per cause: open, update, resolved;
* :mod:`~streamml.validation.schemagen`, :mod:`~streamml.validation.validator` —
  the ``SchemaGen`` and ``ExampleValidator`` processors;
* :mod:`~streamml.validation.files` — files as input (read as ingestion types them,
  line-numbered ids, a reference file's statistics);
* :mod:`~streamml.validation.filecheck` — a whole file validated at once
  (``streamml validate``), on the processors' checks.

>>> schema = infer_schema(_demo_stats(), pipeline="demo", created_at=0)
>>> [f.kind for f in check_example("e1", {"fare": -1.0}, schema)]
['FLOAT_TYPE_SMALL_FLOAT']
"""

from streamml.statistics.dataset import StatisticsAccumulator
from streamml.validation.alerts import AlertBook
from streamml.validation.checks import Finding, SchemaChecker, check_example
from streamml.validation.drift import DriftConfig, jensen_shannon, linf_distance, psi
from streamml.validation.schema import evolve, infer_schema, load_schema, save_schema
from streamml.validation.schemagen import SchemaGen
from streamml.validation.validator import ExampleValidator


def _demo_stats() -> StatisticsAccumulator:
    acc = StatisticsAccumulator()
    acc.add_batch([{"fare": 1.0}, {"fare": 2.5}] * 50)  # 100 values: a range is enforced
    return acc


__all__ = [
    "AlertBook",
    "DriftConfig",
    "ExampleValidator",
    "Finding",
    "SchemaChecker",
    "SchemaGen",
    "check_example",
    "evolve",
    "infer_schema",
    "jensen_shannon",
    "linf_distance",
    "load_schema",
    "psi",
    "save_schema",
]
