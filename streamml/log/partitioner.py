"""Kafka's default partitioner: ``(murmur2(key) & 0x7fffffff) % partitions``.

The same hash as Kafka's Java client (``org.apache.kafka.common.utils.Utils.murmur2``)
and kafka-python, so a key lands in the same partition whichever client wrote it
(embedded log, checkpoints, Kafka). Kept here, not imported from kafka-python:
importing ``kafka`` costs ~0.15 s, paid inside the first checkpoint of every
process otherwise.

>>> murmur2(b"21") == -973932308 & 0xFFFFFFFF  # Kafka's UtilsTest vector
True
>>> kafka_partition(b"user-1", 3) in range(3)
True
"""

from __future__ import annotations

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
