"""Small shared helpers: array ↔ base64 text, a deterministic 64-bit mixer.

>>> decode_array(encode_array(np.array([1.5, -2.0])), np.float64).tolist()
[1.5, -2.0]
>>> int(splitmix64(np.array([1], dtype=np.uint64))[0]) == splitmix64_int(1)
True
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np
import orjson

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def encode_array(values: np.ndarray) -> str:
    """Little-endian bytes of ``values`` as base64 text (exact, JSON-able)."""
    return base64.b64encode(np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"))
                            .tobytes()).decode("ascii")


def decode_array(text: str, dtype: Any) -> np.ndarray:
    """Inverse of :func:`encode_array` (returns a writable native-endian copy)."""
    raw = base64.b64decode(text.encode("ascii"))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def pack_state(state: dict[str, Any]) -> str:
    """A JSON-able state dict as compact text (zlib level 1 + base64), for payload ``sketches``."""
    return base64.b64encode(zlib.compress(orjson.dumps(state), 1)).decode("ascii")


def unpack_state(text: str) -> dict[str, Any]:
    """Inverse of :func:`pack_state`."""
    value = orjson.loads(zlib.decompress(base64.b64decode(text.encode("ascii"))))
    if not isinstance(value, dict):
        raise ValueError("packed sketch state is not an object")
    return value


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer over a uint64 array (wrapping arithmetic, no warnings)."""
    z = x.astype(np.uint64, copy=True)
    z += _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


def splitmix64_int(x: int) -> int:
    """SplitMix64 finalizer of one Python int (same result as :func:`splitmix64`)."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)
