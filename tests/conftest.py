"""Shared fixtures: a real Apache Kafka broker for tests marked ``kafka``.

``kafka_bootstrap`` uses ``$STREAMML_KAFKA_BOOTSTRAP`` when set, else starts one
broker (``scripts/kafka_broker.py``) for the session. A broker that cannot start
skips the Kafka tests locally and fails them under ``CI=true``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# kafka-python 3.0 reads its protocol schemas with deprecated importlib.resources
# calls (attributed to importlib, so pyproject's "kafka.*" filter misses them);
# import it once here, quietly, so filterwarnings=error does not trip on it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Kafka broker unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Kafka broker unavailable: {reason}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka broker."""
    env = os.environ.get("STREAMML_KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    sys.path.insert(0, str(SCRIPTS))
    try:
        import kafka_broker
    finally:
        sys.path.remove(str(SCRIPTS))
    try:
        broker = kafka_broker.start_broker(tmp_path_factory.mktemp("kafka"), die_with_parent=True)
    except (kafka_broker.BrokerError, OSError) as exc:
        _unavailable(str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_url(kafka_bootstrap: str) -> str:
    """``kafka://host:port`` of the session's broker."""
    return f"kafka://{kafka_bootstrap}"


@pytest.fixture(autouse=True)
def _history_dir(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelines under test keep their lineage store in a temp dir, not the checkout's
    ``.streamml-history`` (tests may still set ``STREAMML_HISTORY_DIR`` themselves)."""
    if "STREAMML_HISTORY_DIR" not in os.environ:
        monkeypatch.setenv("STREAMML_HISTORY_DIR", str(tmp_path_factory.mktemp("history")))
