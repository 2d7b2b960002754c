"""The fields ExampleGen computes for every example: split, event time; and batch helpers.

* :func:`hash_split`: a deterministic hash of the id into named buckets
  (``train:eval`` 2:1 by default, as in TFX);
* :func:`time_to_ms` / :func:`to_event_ms`: event times in s, ms, µs or ISO 8601;
* :func:`flatten`: nested JSON objects become dotted feature names;
* :func:`gc_paused`, :func:`encode_example`: the hot path's helpers.

>>> hash_split("taxi:taxi.csv:2") in {"train", "eval"}
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import orjson

from streamml.payloads.base import finite_json

__all__ = ["DEFAULT_SPLITS", "TimeUnit", "encode_example", "flatten", "gc_paused", "hash_split",
           "time_to_ms", "to_event_ms"]

TimeUnit = Literal["auto", "s", "ms", "us", "iso"]
DEFAULT_SPLITS: tuple[tuple[str, int], ...] = (("eval", 1), ("train", 2))


def hash_split(example_id: str, splits: Sequence[tuple[str, int]] = DEFAULT_SPLITS) -> str:
    """The split of ``example_id``: blake2b of the id into the splits' cumulative buckets.

    The default (``eval`` 1 bucket, ``train`` 2) gives the same answer as
    :func:`streamml.processors.basic.split_of`.

    >>> from streamml.processors.basic import split_of
    >>> all(hash_split(f"id-{i}") == split_of(f"id-{i}") for i in range(100))
    True
    >>> hash_split("x", [("train", 8), ("eval", 1), ("test", 1)]) in {"train", "eval", "test"}
    True
    """
    total = sum(n for _, n in splits)
    bucket = int.from_bytes(
        hashlib.blake2b(example_id.encode(), digest_size=8).digest(), "big") % total
    for name, n in splits:
        if bucket < n:
            return name
        bucket -= n
    raise AssertionError("unreachable")  # pragma: no cover


def time_to_ms(value: int | float, unit: TimeUnit = "auto") -> int:
    """Milliseconds since the epoch from a number of seconds, ms or µs.

    ``auto`` reads numbers below 1e11 as seconds, below 1e14 as milliseconds,
    else microseconds (see :func:`to_event_ms` for text).

    >>> time_to_ms(1400269500), time_to_ms(1400269500000), time_to_ms(1.5, "s")
    (1400269500000, 1400269500000, 1500)
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a time")
    if unit == "auto":
        unit = "s" if abs(value) < 1e11 else "ms" if abs(value) < 1e14 else "us"
    if unit == "s":
        ms = value * 1000 if isinstance(value, int) else int(value * 1000)
    elif unit == "ms":
        ms = int(value)
    elif unit == "us":
        ms = int(value // 1000)
    else:
        raise ValueError(f"{value!r} is not ISO 8601 text")
    if ms < 0:
        raise ValueError(f"{value!r} is before 1970")
    return ms


def _iso_to_ms(text: str) -> int:
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601 or a number)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    ms = int(parsed.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{text!r} is before 1970")
    return ms


def to_event_ms(value: Any, unit: TimeUnit) -> int | None:
    """:func:`time_to_ms`, also for text: a number, or ISO 8601 (naive means UTC).

    >>> to_event_ms("2014-05-16T19:45:00Z", "auto"), to_event_ms("1400269500", "s")
    (1400269500000, 1400269500000)
    """
    if value is None:
        return None
    if isinstance(value, str):
        if unit in ("auto", "iso"):
            try:
                return time_to_ms(float(value), "auto" if unit == "iso" else unit)
            except ValueError:
                return _iso_to_ms(value)
        try:
            return time_to_ms(float(value), unit)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of {unit}") from None
    return time_to_ms(value, unit)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one batch (restored after, if it was on).

    A batch allocates tens of thousands of acyclic dicts and lists; letting the
    collector traverse them again and again costs a third of the batch time.

    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was = gc.isenabled()
    if was:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted names; lists of objects become JSON text.

    >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"x": 1}]})
    {'a.b': 1, 'a.c': [1, 2], 'd': '[{"x":1}]'}
    """
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
            out[name] = orjson.dumps(v).decode()
        else:
            out[name] = v
    return out


def encode_example(example: dict[str, Any]) -> bytes:
    """JSON bytes of an example dict (non-finite floats as ``"NaN"``... tokens)."""
    try:
        return orjson.dumps(example)
    except TypeError:
        return orjson.dumps(finite_json(example), default=str)
