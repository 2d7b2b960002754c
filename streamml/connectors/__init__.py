"""Source connectors and ExampleGen: live data in, typed examples and dead letters out.

* :mod:`~streamml.connectors.base`: the :class:`SourceConnector` contract and
  :class:`SourceRecord`; :func:`register_source` plugs in new source types;
* :mod:`~streamml.connectors.file` (CSV, JSON Lines, Parquet; once or follow;
  record framing in :mod:`~streamml.connectors.filetext`, quoted CSV newlines
  included) and :mod:`~streamml.connectors.sql` (SQLite, DuckDB polling);
* :mod:`~streamml.connectors.examplegen`: records → examples / dead letters
  (typing in :mod:`~streamml.connectors.csvbatch` and
  :mod:`~streamml.connectors.coltypes`; splits and event times in
  :mod:`~streamml.connectors.fields`);
* :mod:`~streamml.connectors.ingest`: the exactly-resumable ingest loop;
* :mod:`~streamml.connectors.definition`: ``connectors/<name>.yaml`` files.

>>> load_connector("taxi-file").type
'file'
"""

from __future__ import annotations

from streamml.connectors.base import (
    SourceConnector,
    SourceRecord,
    build_source,
    register_source,
    source_types,
)
from streamml.connectors.definition import (
    ConnectorDefinition,
    list_connectors,
    load_connector,
)
from streamml.connectors.examplegen import ExampleBatch, ExampleGen, hash_split
from streamml.connectors.ingest import Ingestor, IngestStats, TokenBucket
from streamml.processors.basic import split_of

__all__ = [
    "ConnectorDefinition",
    "ExampleBatch",
    "ExampleGen",
    "IngestStats",
    "Ingestor",
    "SourceConnector",
    "SourceRecord",
    "TokenBucket",
    "build_source",
    "hash_split",
    "list_connectors",
    "load_connector",
    "register_source",
    "source_types",
    "split_of",
]
