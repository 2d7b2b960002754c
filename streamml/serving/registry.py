"""The server's table of loaded models, swapped atomically.

Each model name maps to an immutable :class:`ModelEntry` (the latest version and
the last ``keep_versions`` loaded versions). Installing a version builds a new
entry and replaces the reference in one assignment: a request that looked up the
old entry finishes on the old model, the next one sees the new entry, and no
request ever sees a half-loaded model (loading, unpickling and warm-up happened
before :meth:`ModelRegistry.install`). Readers take no lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from streamml.client.errors import ModelNotFound
from streamml.client.served import ServedModel
from streamml.client.verify import Refusal


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model name: its latest version and the loaded recent versions (immutable)."""

    name: str
    latest: ServedModel
    versions: MappingProxyType[int, ServedModel]
    loaded_at_ms: MappingProxyType[int, int] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def version(self, version: int | None) -> ServedModel:
        """The loaded ``version`` (the latest for ``None``); ``ModelNotFound`` otherwise."""
        if version is None:
            return self.latest
        served = self.versions.get(version)
        if served is None:
            loaded = ", ".join(str(v) for v in sorted(self.versions))
            raise ModelNotFound(
                f"model {self.name!r} has no loaded version {version} (loaded: {loaded})"
            )
        return served


class ModelRegistry:
    """Loaded models by name; lock-free reads, atomic swaps.

    >>> from river import linear_model
    >>> from streamml.payloads.artifacts import InlineArtifact, ModelSignature
    >>> from streamml.payloads.models import ModelRelease
    >>> def served(v):
    ...     r = ModelRelease(pipeline="p", name="m", version=v, candidate_id="c",
    ...         signature=ModelSignature(task="regression", label="y", inputs=[]),
    ...         artifact=InlineArtifact.from_bytes(b"", format="river-pickle"), created_at=0)
    ...     return ServedModel(r, linear_model.LinearRegression())
    >>> reg = ModelRegistry(keep_versions=2)
    >>> for v in (1, 2, 3):
    ...     reg.install(served(v))
    >>> reg.get("m").latest.version, sorted(reg.get("m").versions)
    (3, [2, 3])
    >>> [s["version"] for s in reg.status("m")["model_version_status"]]
    ['3', '2', '1']
    """

    def __init__(self, keep_versions: int = 3, keep_refusals: int = 20) -> None:
        if keep_versions < 1:
            raise ValueError("keep_versions must be >= 1")
        self.keep_versions = keep_versions
        self._entries: dict[str, ModelEntry] = {}
        self._unloaded: dict[str, deque[int]] = {}
        self._refusals: dict[str, deque[Refusal]] = {}
        self._write = threading.Lock()  # writers only; readers never lock
        self._keep_refusals = keep_refusals
        self.swaps = 0

    def install(self, served: ServedModel) -> None:
        """Make ``served`` the latest version of its model (ignored if not newer)."""
        with self._write:
            old = self._entries.get(served.name)
            if old is not None and served.version <= old.latest.version:
                return
            versions = dict(old.versions) if old else {}
            loaded = dict(old.loaded_at_ms) if old else {}
            versions[served.version] = served
            loaded[served.version] = int(time.time() * 1000)
            unloaded = self._unloaded.setdefault(served.name, deque(maxlen=20))
            for v in sorted(versions)[: -self.keep_versions]:
                del versions[v]
                loaded.pop(v, None)
                unloaded.append(v)
            entry = ModelEntry(served.name, served, MappingProxyType(versions),
                               MappingProxyType(loaded))
            self._entries[served.name] = entry  # the swap: one reference assignment
            if old is not None:
                self.swaps += 1

    def refuse(self, refusal: Refusal) -> None:
        """Remember a refused release, for status queries."""
        if refusal.name is None:
            return
        with self._write:
            self._refusals.setdefault(refusal.name, deque(maxlen=self._keep_refusals)).append(
                refusal
            )

    def get(self, name: str) -> ModelEntry:
        """The entry of model ``name``; ``ModelNotFound`` if none is loaded."""
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(f"no model named {name!r} is served")
        return entry

    def names(self) -> list[str]:
        """Names of the served models and of models whose every release was refused."""
        return sorted(set(self._entries) | set(self._refusals))

    def entries(self) -> list[ModelEntry]:
        return [self._entries[n] for n in sorted(self._entries)]

    def status(self, name: str) -> dict[str, Any]:
        """TF Serving's ``GET /v1/models/{name}`` body: ``model_version_status``, newest first.

        Loaded versions are ``AVAILABLE``; unloaded ones (older than the last
        ``keep_versions``) ``END``; refused releases ``END`` with an error status.
        """
        entry = self._entries.get(name)
        refusals = list(self._refusals.get(name, ()))
        if entry is None and not refusals:
            raise ModelNotFound(f"no model named {name!r} is served")
        rows: list[tuple[int, dict[str, Any]]] = []
        ok = {"error_code": "OK", "error_message": ""}
        if entry is not None:
            for v in entry.versions:
                rows.append((v, {"version": str(v), "state": "AVAILABLE", "status": ok}))
        for v in self._unloaded.get(name, ()):
            rows.append((v, {"version": str(v), "state": "END", "status": ok}))
        for r in refusals:
            status = {"error_code": "FAILED_PRECONDITION", "error_message": r.message,
                      "reason": r.reason}
            rows.append((r.version or 0, {"version": str(r.version), "state": "END",
                                          "status": status}))
        rows.sort(key=lambda row: row[0], reverse=True)
        return {"model_version_status": [row for _, row in rows]}
