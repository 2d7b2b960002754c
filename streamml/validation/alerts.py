"""Alert lifecycle: one alert per cause, opened, updated and resolved — never one per example.

A *cause* is a stable string such as ``example/FLOAT_TYPE_HAS_NAN/fare`` or
``window/DRIFT/fare/train/previous``. :meth:`AlertBook.hit` records that the
cause shows (counts add up, a bounded sample of example ids is kept);
:meth:`AlertBook.flush` turns every cause hit since the last flush into one
:class:`~streamml.payloads.anomalies.Alert` record — ``open`` the first time,
``update`` afterwards — and :meth:`AlertBook.resolve` closes it. The alert id
(the record key) is ``<pipeline>/<type>/<feature>/<opening window>``, derived
from inputs only, so a replay produces the same keys.

>>> book = AlertBook("demo")
>>> for i in range(3):
...     book.hit("example/FLOAT_TYPE_HAS_NAN/fare", type="FLOAT_TYPE_HAS_NAN", severity="error",
...              scope="example", feature="fare", message="NaN in 'fare'", time_ms=10 + i,
...              opened_in="examples:1000:0", example_ids=[f"e{i}"])
>>> [a] = book.flush(); a.status, a.count, a.example_ids, a.id
('open', 3, ['e0', 'e1', 'e2'], 'demo/FLOAT_TYPE_HAS_NAN/fare/examples:1000:0')
>>> book.hit("example/FLOAT_TYPE_HAS_NAN/fare", type="FLOAT_TYPE_HAS_NAN", severity="error",
...          scope="example", feature="fare", message="NaN", time_ms=20, opened_in="x")
>>> [(a.status, a.count) for a in book.flush()]
[('update', 4)]
>>> r = book.resolve("example/FLOAT_TYPE_HAS_NAN/fare", time_ms=30)
>>> r.status, r.resolved_at, book.flush()
('resolved', 30, [])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamml.payloads.anomalies import Alert
from streamml.payloads.statistics import Window

#: Example ids kept per alert (the payload allows up to 100).
MAX_SAMPLE_IDS = 20


class AlertBook:
    """Open alerts by cause, with their not-yet-published changes (see module docs)."""

    def __init__(self, pipeline: str, component: str = "ExampleValidator") -> None:
        self.pipeline = pipeline
        self.component = component
        #: cause -> alert fields (JSON) ; "published" marks whether "open" was sent
        self.alerts: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()

    def hit(self, cause: str, *, type: str, severity: str, scope: str, message: str,
            time_ms: int, opened_in: str, feature: str | None = None,
            window: Window | None = None, count: int = 1,
            example_ids: Iterable[str] = (), **fields: Any) -> None:
        """Record that ``cause`` shows; ``fields`` are other Alert fields (metric, value...)."""
        time_ms = max(0, time_ms)  # an event time before 1970 (bad input) must not crash
        a = self.alerts.get(cause)
        if a is None:
            a = self.alerts[cause] = {
                "id": f"{self.pipeline}/{type}/{feature or '-'}/{opened_in}",
                "pipeline": self.pipeline, "type": type, "scope": scope, "feature": feature,
                "first_seen": time_ms, "last_seen": time_ms, "count": 0, "example_ids": [],
                "component": self.component, "published": False,
            }
        a["severity"], a["message"] = severity, message
        a["last_seen"] = max(a["last_seen"], time_ms)
        a["count"] += count
        ids = a["example_ids"]
        for eid in example_ids:
            if len(ids) >= MAX_SAMPLE_IDS:
                break
            ids.append(eid)
        if window is not None:
            a["window"] = window.to_json()
        a.update({k: v for k, v in fields.items()})
        self.dirty.add(cause)

    def _alert(self, a: dict[str, Any], status: str, **extra: Any) -> Alert:
        data = {k: v for k, v in a.items() if k != "published"}
        return Alert.model_validate({**data, "status": status, **extra})

    def flush(self) -> list[Alert]:
        """One ``open``/``update`` record per cause hit since the last flush (sorted by id)."""
        out = []
        for cause in sorted(self.dirty, key=lambda c: self.alerts[c]["id"]):
            a = self.alerts[cause]
            out.append(self._alert(a, "update" if a["published"] else "open"))
            a["published"] = True
        self.dirty.clear()
        return out

    def is_open(self, cause: str) -> bool:
        return cause in self.alerts

    def causes(self, prefix: str = "") -> list[str]:
        """Open causes starting with ``prefix``."""
        return sorted(c for c in self.alerts if c.startswith(prefix))

    def resolve(self, cause: str, time_ms: int, message: str | None = None) -> Alert | None:
        """Close ``cause``: its ``resolved`` record (``None`` if it was not open)."""
        a = self.alerts.pop(cause, None)
        self.dirty.discard(cause)
        if a is None:
            return None
        t = max(time_ms, a["last_seen"])
        return self._alert(a, "resolved", resolved_at=t, last_seen=t,
                           **({"message": message} if message else {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"alerts": self.alerts, "dirty": sorted(self.dirty)}

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`to_dict`."""
        self.alerts = {k: dict(v) for k, v in state["alerts"].items()}
        self.dirty = set(state["dirty"])
