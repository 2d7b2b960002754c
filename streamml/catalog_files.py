"""The catalog's files: JSON Schemas under ``topics/schemas/`` and the packaged copy.

``python -m streamml.catalog write-schemas`` (``make schemas``) regenerates the
schema of every role from its payload model and mirrors ``topics/`` into
``streamml/topicdefs/`` (what a wheel ships); ``check-schemas`` fails, with one
line per problem, when either is out of date.

>>> from streamml.catalog import load_catalog
>>> catalog = load_catalog()
>>> stale_schemas(catalog)
[]
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from streamml.catalog import (
    PACKAGED_TOPICS_DIR,
    SCHEMAS_SUBDIR,
    Catalog,
    load_catalog,
    source_topics_dir,
)
from streamml.errors import ConfigError


def schema_path(folder: Path, role: str) -> Path:
    return folder / SCHEMAS_SUBDIR / f"{role}.schema.json"


def write_schemas(catalog: Catalog, folder: Path | None = None) -> list[Path]:
    """Write every role's schema file under ``folder/schemas``; remove orphans. Return changed."""
    folder = folder or catalog.path
    if folder is None:
        raise ConfigError("no folder to write schemas to")
    out = folder / SCHEMAS_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for role in catalog.roles:
        target, text = schema_path(folder, role), catalog.schema_text(role)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    expected = {schema_path(folder, r) for r in catalog.roles}
    for orphan in sorted(set(out.glob("*.schema.json")) - expected):
        orphan.unlink()
        changed.append(orphan)
    return changed


def stale_schemas(catalog: Catalog, folder: Path | None = None) -> list[str]:
    """Problems with the schema files: ``missing``, ``stale`` or ``orphan``, one line each."""
    folder = folder or catalog.path
    if folder is None:
        raise ConfigError("no folder to check schemas in")
    problems = []
    for role in catalog.roles:
        target = schema_path(folder, role)
        if not target.is_file():
            problems.append(f"missing {target}")
        elif target.read_text(encoding="utf-8") != catalog.schema_text(role):
            problems.append(f"stale {target}")
    expected = {schema_path(folder, r) for r in catalog.roles}
    for orphan in sorted(set((folder / SCHEMAS_SUBDIR).glob("*.schema.json")) - expected):
        problems.append(f"orphan {orphan} (no topic definition)")
    return problems


def _mirrored(folder: Path) -> set[Path]:
    """Files of a topics folder that the packaged copy mirrors, relative to it."""
    files = [*folder.glob("*.yaml"), *folder.glob("*.md"), *folder.glob(f"{SCHEMAS_SUBDIR}/*.json")]
    return {f.relative_to(folder) for f in files if f.is_file()}


def package_copy_problems(source: Path, copy: Path = PACKAGED_TOPICS_DIR) -> list[str]:
    """How ``copy`` differs from ``source`` (missing, different or extra files)."""
    want, have = _mirrored(source), _mirrored(copy) if copy.is_dir() else set()
    problems = [f"missing {copy / rel}" for rel in sorted(want - have)]
    problems += [f"extra {copy / rel}" for rel in sorted(have - want)]
    problems += [
        f"differs {copy / rel}"
        for rel in sorted(want & have)
        if not filecmp.cmp(source / rel, copy / rel, shallow=False)
    ]
    return problems


def sync_package_copy(source: Path, copy: Path = PACKAGED_TOPICS_DIR) -> list[Path]:
    """Make ``copy`` mirror ``source`` (YAML, Markdown, schemas). Return changed paths."""
    want, have = _mirrored(source), _mirrored(copy) if copy.is_dir() else set()
    changed = []
    for rel in sorted(want):
        target = copy / rel
        if not target.is_file() or not filecmp.cmp(source / rel, target, shallow=False):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, target)
            changed.append(target)
    for rel in sorted(have - want):
        (copy / rel).unlink()
        changed.append(copy / rel)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamml.catalog write-schemas|check-schemas [--topics DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m streamml.catalog", description="Write or check topics/schemas/."
    )
    parser.add_argument("command", choices=["write-schemas", "check-schemas"])
    parser.add_argument("--topics", type=Path, default=None, help="default: topics/")
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.topics)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    source = catalog.path if catalog.path is not None else Path(".")
    # The packaged copy mirrors the source checkout's topics/ only.
    mirror = args.topics is None and source == source_topics_dir()
    if args.command == "write-schemas":
        changed = write_schemas(catalog)
        if mirror:
            changed += sync_package_copy(source)
        for path in changed:
            print(f"wrote {path}")
        print(f"{len(catalog.roles)} schemas up to date ({len(changed)} file(s) changed)")
        return 0
    problems = stale_schemas(catalog)
    if mirror:
        problems += package_copy_problems(source)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            "topic schemas are out of date; run `make schemas` "
            "(python -m streamml.catalog write-schemas)",
            file=sys.stderr,
        )
        return 1
    print(f"{len(catalog.roles)} schemas up to date")
    return 0
