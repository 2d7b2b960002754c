"""Kafka's default partitioner: ``(murmur2(key) & 0x7fffffff) % partitions``.

:func:`kafka_partition` hashes one key (the embedded producer, checkpoints);
:func:`partitions_for` a whole batch with numpy, ~30x faster than one call per
key (ExampleGen's ingest loop): keys are grouped by length and hashed column-wise.

The same hash as Kafka's Java client (``org.apache.kafka.common.utils.Utils.murmur2``)
and kafka-python, so a key lands in the same partition whichever client wrote it
(embedded log, checkpoints, Kafka). Kept here, not imported from kafka-python:
importing ``kafka`` costs ~0.15 s, paid inside the first checkpoint of every
process otherwise.

>>> murmur2(b"21") == -973932308 & 0xFFFFFFFF  # Kafka's UtilsTest vector
True
>>> kafka_partition(b"user-1", 3) in range(3)
True
>>> keys = [b"", b"a", b"ab", b"abc", b"taxi:taxi.csv:12", b"user-1"]
>>> partitions_for(keys, 3) == [kafka_partition(k, 3) for k in keys]
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka computes it, as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition of ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


_M_NP = np.uint32(_M)


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
                    k = k4[:, j] * _M_NP
                    k ^= k >> np.uint32(24)
                    k *= _M_NP
                    h *= _M_NP
                    h ^= k
            extra = length % 4
            base = length & ~3
            if extra >= 3:
                h ^= data[:, base + 2].astype(np.uint32) << np.uint32(16)
            if extra >= 2:
                h ^= data[:, base + 1].astype(np.uint32) << np.uint32(8)
            if extra >= 1:
                h ^= data[:, base].astype(np.uint32)
                h *= _M_NP
            h ^= h >> np.uint32(13)
            h *= _M_NP
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
