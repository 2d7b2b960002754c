"""docker-compose.yml runs the same Kafka version as the test broker (scripts/kafka/pom.xml)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pinned_kafka_version() -> str:
    pom = ET.parse(ROOT / "scripts" / "kafka" / "pom.xml").getroot()
    version = pom.findtext("m:properties/m:kafka.version", namespaces=MAVEN_NS)
    assert version, "scripts/kafka/pom.xml pins no <kafka.version>"
    deps = pom.findall("m:dependencies/m:dependency", MAVEN_NS)
    kafka = [d for d in deps if d.findtext("m:artifactId", namespaces=MAVEN_NS) == "kafka_2.13"]
    assert kafka and kafka[0].findtext("m:version", namespaces=MAVEN_NS) == "${kafka.version}"
    return version.strip()


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_kafka_image_matches_the_pinned_broker() -> None:
    image = compose()["services"]["kafka"]["image"]
    name, _, tag = image.partition(":")
    assert name == "apache/kafka"
    assert tag == pinned_kafka_version()


def test_kafka_is_single_node_kraft_reachable_from_the_host() -> None:
    kafka = compose()["services"]["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "9092:9092" in kafka["ports"]
    assert "localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_worker_runs_streamml_worker_on_the_compose_broker() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["build"] == "."
    assert worker["command"][0] == "worker"
    assert worker["environment"]["STREAMML_BROKER"].startswith("kafka://kafka:")
    internal = re.search(
        r"PLAINTEXT://kafka:(\d+)", services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert internal and worker["environment"]["STREAMML_BROKER"] == f"kafka://kafka:{internal[1]}"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms == ["python:3.11-slim"]
    assert 'ENTRYPOINT ["streamml"]' in dockerfile
