"""The checked-in JSON Schemas (topics/schemas/) match the payload models, and the
packaged copy of topics/ (streamml/topicdefs/) matches topics/."""

from __future__ import annotations

import json

import pytest

from streamml.catalog import PACKAGED_TOPICS_DIR, load_catalog, source_topics_dir
from streamml.catalog_files import package_copy_problems, schema_path, stale_schemas

HOW_TO_FIX = (
    "regenerate with `make schemas` (or `.venv/bin/python -m streamml.catalog write-schemas`) "
    "and commit the result"
)
CATALOG = load_catalog()
assert CATALOG.path is not None
TOPICS = CATALOG.path


@pytest.mark.parametrize("role", CATALOG.roles)
def test_schema_file_is_current(role: str) -> None:
    path = schema_path(TOPICS, role)
    if not path.is_file():
        pytest.fail(f"{path} is missing: {HOW_TO_FIX}")
    if path.read_text(encoding="utf-8") != CATALOG.schema_text(role):
        pytest.fail(
            f"{path} is stale (the payload model or topic definition changed): {HOW_TO_FIX}"
        )


def test_no_stale_missing_or_orphan_schema_files() -> None:
    problems = stale_schemas(CATALOG)
    assert not problems, "\n".join([*problems, HOW_TO_FIX])


@pytest.mark.parametrize("role", CATALOG.roles)
def test_schema_files_are_json_schemas_of_the_payload(role: str) -> None:
    document = json.loads(schema_path(TOPICS, role).read_text(encoding="utf-8"))
    assert document["$schema"].startswith("https://json-schema.org/")
    assert document["x-streamml-topic"]["name"] == f"{{pipeline}}.{role}"
    assert document["title"] == CATALOG.payload_model(role).__name__


def test_packaged_copy_matches_topics_folder() -> None:
    source = source_topics_dir()
    if source is None:  # pragma: no cover - installed package: the copy is all there is
        pytest.skip("not a source checkout")
    problems = package_copy_problems(source, PACKAGED_TOPICS_DIR)
    assert not problems, "\n".join([*problems, f"streamml/topicdefs/ is out of date: {HOW_TO_FIX}"])
