"""Fixtures of the log conformance suite: one ``log`` fixture, two implementations.

Every test in this folder runs once on :class:`streamml.log.embedded.EmbeddedLog`
(in ``tmp_path``) and once on :class:`streamml.log.kafka.KafkaLog` (on the
session broker of the root ``tests/conftest.py``, with unique topic and group
names per test, so tests never see each other's data).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml.log.base import Log
from tests.conformance.helpers import LogHelper

IMPLEMENTATIONS = ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)]


def _import_or_skip(module: str) -> None:
    """Import an implementation; outside CI a missing one skips instead of erroring."""
    try:
        __import__(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not importable yet: {exc}")


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Log, object]:
    if kind == "embedded":
        _import_or_skip("streamml.log.embedded")
        from streamml.log.embedded import EmbeddedLog

        path = str(tmp_path / "log")

        def reopen() -> Log:
            return EmbeddedLog(path)

        return reopen(), reopen
    _import_or_skip("streamml.log.kafka")
    from streamml.log.kafka import KafkaLog

    bootstrap = request.getfixturevalue("kafka_bootstrap")

    def reopen_kafka() -> Log:
        return KafkaLog(bootstrap, client_config={})

    return reopen_kafka(), reopen_kafka


@pytest.fixture(params=IMPLEMENTATIONS)
def lh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogHelper]:
    """The log under test wrapped with helpers (unique names, waits, cleanup)."""
    log, reopen = _open(request.param, request, tmp_path)
    helper = LogHelper(kind=request.param, log=log, reopen=reopen)  # type: ignore[arg-type]
    try:
        yield helper
    finally:
        helper.cleanup()


@pytest.fixture
def log(lh: LogHelper) -> Log:
    """The bare :class:`~streamml.log.base.Log` under test (embedded or Kafka)."""
    return lh.log
