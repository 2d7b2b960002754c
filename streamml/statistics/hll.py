"""HyperLogLog distinct counter (Flajolet et al. 2007) with Ertl's improved estimator.

``2**p`` one-byte registers; each value is hashed to 64 bits, the top ``p``
bits pick a register and the register keeps the maximum "leading zeros + 1"
of the remaining ``64 - p`` bits. Merging is the register-wise maximum, so a
merged sketch is *identical* to the sketch of the union, and adding a value
twice changes nothing (the hot path hashes each batch's unique values once).

The estimate uses Ertl's improved raw estimator ("New cardinality estimation
algorithms for HyperLogLog sketches", 2017), which is unbiased from 0 to well
beyond 10^12 without HLL++'s empirical bias tables. Relative standard error is
``1.04 / sqrt(2**p)``: the default ``p = 12`` (4 KiB of registers) gives
**1.6%** (about 5% worst case at 3 sigma); small cardinalities are almost exact
(linear-counting regime).

Hashes: numbers by their float64 bits (``-0.0`` as ``0.0``, ints as floats)
through SplitMix64; strings by an 8-byte BLAKE2b digest of their UTF-8 bytes.

>>> import numpy as np
>>> h = HyperLogLog()
>>> h.add_numbers(np.arange(50_000, dtype=float))
>>> abs(h.estimate() - 50_000) / 50_000 < 0.05
True
>>> g = HyperLogLog(); g.add_strings(["a", "b", "a"]); round(g.estimate())
2
>>> HyperLogLog.from_dict(h.to_dict()).estimate() == h.estimate()
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from streamml.statistics._codec import decode_array, encode_array, splitmix64

DEFAULT_P = 12
_HALVES = {q: 2.0 ** -np.arange(1, q + 1, dtype=np.float64) for q in range(46, 61)}


def relative_error(p: int) -> float:
    """Relative standard error of the estimate for ``2**p`` registers.

    >>> round(relative_error(12), 4)
    0.0163
    """
    return 1.04 / math.sqrt(1 << p)


def hash_numbers(values: np.ndarray) -> np.ndarray:
    """64-bit hashes of numbers (float64 bits through SplitMix64)."""
    arr = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    return splitmix64(arr.view(np.uint64))


def hash_strings(values: Iterable[str]) -> np.ndarray:
    """64-bit hashes of strings (BLAKE2b, 8-byte digest); call it on unique values."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(v.encode("utf-8", "surrogatepass"), digest_size=8)
                        .digest(), "little") for v in values),
        dtype=np.uint64,
    )


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z == z_old:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_old:
            return z / 3.0


class HyperLogLog:
    """Mergeable distinct-count sketch (see module docs for the error bound).

    >>> a, b = HyperLogLog(), HyperLogLog()
    >>> a.add_strings(["x", "y"]); b.add_strings(["y", "z"])
    >>> a.merge(b); round(a.estimate())
    3
    """

    __slots__ = ("p", "registers")

    def __init__(self, p: int = DEFAULT_P) -> None:
        if not 4 <= p <= 18:
            raise ValueError("p must be in [4, 18]")
        self.p = p
        self.registers = np.zeros(1 << p, dtype=np.uint8)

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Add precomputed 64-bit hashes (uint64 array)."""
        if hashes.size == 0:
            return
        q = 64 - self.p
        idx = (hashes >> np.uint64(q)).astype(np.intp)
        rest = hashes & np.uint64((1 << q) - 1)
        # bit length of ``rest`` (< 2**52, exact in float64) via frexp's exponent
        _, bit_length = np.frexp(rest.astype(np.float64))
        rank = (q + 1 - bit_length).astype(np.uint8)
        np.maximum.at(self.registers, idx, rank)

    def add_numbers(self, values: np.ndarray) -> None:
        """Add numbers (finite floats or ints)."""
        self.add_hashes(hash_numbers(values))

    def add_strings(self, values: Iterable[str]) -> None:
        """Add strings (duplicates are harmless but cost a hash each)."""
        self.add_hashes(hash_strings(values))

    def merge(self, other: HyperLogLog) -> None:
        """Register-wise maximum: exactly the sketch of the union."""
        if other.p != self.p:
            raise ValueError(f"cannot merge HyperLogLog p={other.p} into p={self.p}")
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> float:
        """Estimated number of distinct values added (Ertl's improved estimator)."""
        m = 1 << self.p
        q = 64 - self.p
        counts = np.bincount(self.registers, minlength=q + 2).astype(np.float64)
        # Horner's z = (z + c[k]) / 2 for k = q..1, unrolled into one dot product
        z = m * _tau(1.0 - counts[q + 1] / m) * 2.0**-q + float(
            np.dot(counts[1:q + 1], _HALVES[q]))
        z += m * _sigma(counts[0] / m)
        return float((m * m / (2.0 * math.log(2.0))) / z)

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """JSON-able state (registers as base64; the numpy array with ``arrays``)."""
        return {"p": self.p,
                "registers": self.registers if arrays else encode_array(self.registers)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> HyperLogLog:
        """Inverse of :meth:`to_dict`."""
        h = cls(int(state["p"]))
        h.registers = decode_array(state["registers"], np.uint8)
        return h
