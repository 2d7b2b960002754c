"""JSON encoding of record keys and values (orjson: fast, strict UTF-8).

Every topic carries JSON so that any client (kcat, Java, the browser) can read
it. Keys are UTF-8 strings.

>>> decode(encode({"fare": 7.25, "payment_type": "Cash"}))
{'fare': 7.25, 'payment_type': 'Cash'}
>>> decode(b"{not json")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streamml.errors.InvalidRecord: not valid JSON: unexpected character, expected a string key: ...
"""

from __future__ import annotations

from typing import Any

import orjson

from streamml.errors import InvalidRecord

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def encode(value: Any) -> bytes:
    """Encode a JSON-able value (dicts, lists, numbers, strings, pydantic dumps)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        raise InvalidRecord(f"cannot encode as JSON: {exc}") from exc


def decode(data: bytes | bytearray | memoryview | str | None) -> Any:
    """Decode JSON bytes; ``None`` (a tombstone) decodes to ``None``."""
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not valid JSON: {exc}") from exc


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8")


def decode_key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", errors="replace")
