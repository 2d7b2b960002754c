"""Kafka's default partitioner, vectorized with numpy for whole batches of keys.

``partitions_for(keys, n)`` gives ``(murmur2(key) & 0x7fffffff) % n`` for
every key, exactly as kafka-python's and the Java client's default
partitioner (and the embedded log) do, about 30x faster than calling the pure
Python ``murmur2`` per key: keys are grouped by length and hashed column-wise.

>>> from kafka.partitioner.default import murmur2
>>> keys = [b"", b"a", b"ab", b"abc", b"taxi:taxi.csv:12", b"user-1"]
>>> partitions_for(keys, 3) == [(murmur2(k) & 0x7FFFFFFF) % 3 for k in keys]
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_M = np.uint32(0x5BD1E995)
_SEED = 0x9747B28C


def murmur2_many(keys: Sequence[bytes]) -> np.ndarray:
    """32-bit murmur2 (Kafka's variant) of every key, as ``uint32``."""
    out = np.empty(len(keys), dtype=np.uint32)
    lens = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    uniq = np.unique(lens)
    with np.errstate(over="ignore"):
        for length in uniq.tolist():
            if len(uniq) == 1:
                idx: list[int] | slice = slice(None)
                joined = b"".join(keys)
            else:
                idx = np.flatnonzero(lens == length).tolist()
                joined = b"".join([keys[i] for i in idx])
            n = len(keys) if isinstance(idx, slice) else len(idx)
            data = np.frombuffer(joined, dtype=np.uint8).reshape(n, length)
            h = np.full(n, (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
            words = length // 4
            if words:
                w = data[:, : words * 4].reshape(n, words, 4).astype(np.uint32)
                k4 = w[:, :, 0] | (w[:, :, 1] << 8) | (w[:, :, 2] << 16) | (w[:, :, 3] << 24)
                for j in range(words):
                    k = k4[:, j] * _M
                    k ^= k >> np.uint32(24)
                    k *= _M
                    h *= _M
                    h ^= k
            extra = length % 4
            base = length & ~3
            if extra >= 3:
                h ^= data[:, base + 2].astype(np.uint32) << np.uint32(16)
            if extra >= 2:
                h ^= data[:, base + 1].astype(np.uint32) << np.uint32(8)
            if extra >= 1:
                h ^= data[:, base].astype(np.uint32)
                h *= _M
            h ^= h >> np.uint32(13)
            h *= _M
            h ^= h >> np.uint32(15)
            out[idx] = h
    return out


def partitions_for(keys: Sequence[bytes], partitions: int) -> list[int]:
    """Kafka's default partition of every key."""
    if partitions == 1:
        return [0] * len(keys)
    if not keys:
        return []
    hashes = murmur2_many(keys) & np.uint32(0x7FFFFFFF)
    return (hashes % np.uint32(partitions)).tolist()
