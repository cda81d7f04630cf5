"""Bloom filters bit-identical to pybloom-live 4.0.0's BloomFilter, built in bulk.

The format is written down in docs/PROTOCOL.md (sections 2 and 3). Filter
bits are a little-endian ``bitarray`` of exactly ``num_bits`` bits, the
representation pybloom-live itself uses.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import xxhash
from bitarray import bitarray

FILE_FMT = "<dQQQQ"  # snapshot header: error_rate, num_slices, bits_per_slice, capacity, count
HEADER_BYTES = struct.calcsize(FILE_FMT)  # 40
PARALLEL_MIN_KEYS = 200_000  # below this, starting worker processes costs more than they save
BATCH_KEYS = 1 << 13  # keys hashed per numpy batch: their digests stay in the CPU cache
KEY_SEPARATOR = b"\n"  # never in an E.164 string, so keys travel to workers as one bytes object

# (largest total hash bits, name, constructor), in pybloom-live's order of preference.
_HASHES = (
    (128, "xxh128", xxhash.xxh128),
    (160, "sha1", hashlib.sha1),
    (256, "sha256", hashlib.sha256),
    (384, "sha384", hashlib.sha384),
    (None, "sha512", hashlib.sha512),
)


def _one_digest(hash_name: str, data: bytes) -> bytes:
    if hash_name == "xxh128":
        return xxhash.xxh3_128_digest(data)
    return getattr(hashlib, hash_name)(data).digest()


class SnapshotError(ValueError):
    """A snapshot that is not a well-formed pybloom-live file."""


class Geometry(NamedTuple):
    """Shape of a partitioned filter: k slices of s bits each."""

    num_slices: int
    bits_per_slice: int

    @property
    def num_bits(self) -> int:
        """Total filter bits, m = k * s."""
        return self.num_slices * self.bits_per_slice


class Snapshot(NamedTuple):
    """A parsed snapshot: pybloom-live's header fields and the filter bits."""

    error_rate: float
    num_slices: int
    bits_per_slice: int
    capacity: int
    count: int
    bits: bitarray

    @property
    def geometry(self) -> Geometry:
        """The filter's geometry."""
        return Geometry(self.num_slices, self.bits_per_slice)


@dataclass(frozen=True)
class HashScheme:
    """How keys map to bit positions for one geometry (PROTOCOL.md 2.2)."""

    geometry: Geometry
    hash_name: str  # xxh128, sha1, sha256, sha384 or sha512
    fmt_code: str  # H, I or Q: width of each value taken from a digest
    prefixes: tuple[bytes, ...]  # salt i is H(LE32(i)); a key's digest is H(prefix_i || key)

    @property
    def value_dtype(self) -> np.dtype:
        """numpy dtype of one little-endian digest value."""
        return np.dtype("<" + {"H": "u2", "I": "u4", "Q": "u8"}[self.fmt_code])

    def digests(self, key_bytes: Sequence[bytes]) -> list[bytes]:
        """Per salt, the concatenated digests of every key: the whole hashing cost."""
        out = []
        if self.hash_name == "xxh128":
            digest = xxhash.xxh3_128_digest  # one call instead of copy/update/digest
            for prefix in self.prefixes:
                out.append(b"".join([digest(prefix + k) for k in key_bytes]))
            return out
        for prefix in self.prefixes:
            salt = getattr(hashlib, self.hash_name)(prefix)
            copy = salt.copy
            parts = []
            append = parts.append
            for k in key_bytes:
                h = copy()
                h.update(k)
                append(h.digest())
            out.append(b"".join(parts))
        return out

    def slice_values(self, key_bytes: Sequence[bytes]) -> np.ndarray:
        """Each key's bit within each slice (before the slice offsets), shape (len(keys), k)."""
        k, s = self.geometry
        n = len(key_bytes)
        if n == 0:
            return np.empty((0, k), dtype=np.uint64)
        parts = [np.frombuffer(d, dtype=self.value_dtype).reshape(n, -1) for d in self.digests(key_bytes)]
        values = (parts[0] if len(parts) == 1 else np.hstack(parts))[:, :k]
        return values % values.dtype.type(s)

    def positions_of_bytes(self, key_bytes: Sequence[bytes]) -> np.ndarray:
        """Absolute bit positions, shape (len(keys), k), for UTF-8 encoded keys."""
        k, s = self.geometry
        offsets = np.arange(k, dtype=np.int64) * s
        return self.slice_values(key_bytes).astype(np.int64) + offsets


def geometry(capacity: int, error_rate: float) -> Geometry:
    """(num_slices, bits_per_slice) exactly as pybloom-live's BloomFilter computes them."""
    if not 0 < error_rate < 1:
        raise ValueError("error_rate must be between 0 and 1")
    if not capacity > 0:
        raise ValueError("capacity must be > 0")
    num_slices = int(math.ceil(math.log(1.0 / error_rate, 2)))
    bits_per_slice = int(math.ceil((capacity * abs(math.log(error_rate))) / (num_slices * (math.log(2) ** 2))))
    return Geometry(num_slices, bits_per_slice)


@lru_cache(maxsize=64)
def hash_scheme(geom: Geometry) -> HashScheme:
    """The hash, value width and salts pybloom-live's make_hashfuncs picks for geom."""
    k, s = geom
    if s >= 1 << 31:
        fmt_code, width = "Q", 8
    elif s >= 1 << 15:
        fmt_code, width = "I", 4
    else:
        fmt_code, width = "H", 2
    total_bits = 8 * k * width
    name, ctor = next((n, c) for limit, n, c in _HASHES if limit is None or total_bits <= limit)
    values_per_digest = ctor().digest_size // width
    num_salts = -(-k // values_per_digest)
    prefixes = tuple(ctor(struct.pack("<I", i)).digest() for i in range(num_salts))
    return HashScheme(Geometry(k, s), name, fmt_code, prefixes)


def encode_keys(keys: Sequence[str]) -> list[bytes]:
    """UTF-8 bytes of each key, in one C-level pass when no key holds a newline."""
    if not keys:
        return []
    joined = _joined(keys)
    return joined.split(KEY_SEPARATOR) if isinstance(joined, bytes) else joined


def key_positions(key: str, geom: Geometry) -> list[int]:
    """The k absolute bit positions of one key, slice by slice."""
    scheme = hash_scheme(geom)
    k, s = geom
    data = key.encode("utf-8")
    values: list[int] = []
    for prefix in scheme.prefixes:
        digest = _one_digest(scheme.hash_name, prefix + data)
        values.extend(struct.unpack(f"<{len(digest) // scheme.value_dtype.itemsize}{scheme.fmt_code}", digest))
    return [j * s + v % s for j, v in enumerate(values[:k])]


def positions_array(keys: Sequence[str], geom: Geometry) -> np.ndarray:
    """Absolute bit positions of many keys, an int64 array of shape (len(keys), k)."""
    return hash_scheme(geom).positions_of_bytes(encode_keys(list(keys)))


def contains(bits: bitarray, key: str, geom: Geometry) -> bool:
    """True when every bit of key is set: the client's lookup."""
    return all(bits[p] for p in key_positions(key, geom))


def _packed_bits(key_bytes: Sequence[bytes], geom: Geometry) -> bytes:
    """The filter bytes (little-endian bit order) of UTF-8 encoded keys."""
    scheme = hash_scheme(geom)
    k, s = geom
    n = len(key_bytes)
    # Slice-major: all keys' bits of one slice at a time keep the random writes inside one
    # slice-sized array that stays in cache; writes spread over the whole filter miss it.
    columns = np.empty((k, n), dtype=np.uint32 if s <= 1 << 32 else np.uint64)
    for start in range(0, n, BATCH_KEYS):
        columns[:, start : start + BATCH_KEYS] = scheme.slice_values(key_bytes[start : start + BATCH_KEYS]).T
    bits = bitarray(endian="little")
    # One byte per bit: setting bools by index is safe with repeated indexes, OR-ing packed bytes is not.
    marks = np.empty(s, dtype=bool)
    for column in columns:
        marks[:] = False
        marks[column] = True
        bits += _bits_from_bytes(np.packbits(marks, bitorder="little").tobytes(), s)
    return bits.tobytes()


def _packed_bits_worker(keys: bytes | list[bytes], geom: Geometry) -> bytes:
    """Worker side of build_bits: keys arrive joined by KEY_SEPARATOR, which pickles fastest."""
    return _packed_bits(keys.split(KEY_SEPARATOR) if isinstance(keys, bytes) else keys, geom)


def _joined(keys: Sequence[str]) -> bytes | list[bytes]:
    """keys as one KEY_SEPARATOR-joined blob, or encoded one by one if a key holds the separator."""
    blob = "\n".join(keys).encode("utf-8")
    return blob if blob.count(KEY_SEPARATOR) == len(keys) - 1 else [key.encode("utf-8") for key in keys]


def _bits_from_bytes(data: bytes, num_bits: int) -> bitarray:
    bits = bitarray(endian="little")
    bits.frombytes(data)
    del bits[num_bits:]
    return bits


def default_workers() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_bits(keys: Iterable[str], geom: Geometry, workers: int | None = None) -> bitarray:
    """The filter bits of keys, as pybloom-live's add loop would set them; parallel for big sets."""
    keys = keys if isinstance(keys, list) else list(keys)
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(keys) < PARALLEL_MIN_KEYS:
        return _bits_from_bytes(_packed_bits(encode_keys(keys), geom), geom.num_bits)
    step = -(-len(keys) // workers)
    chunks = [keys[i : i + step] for i in range(0, len(keys), step)]
    with ProcessPoolExecutor(max_workers=len(chunks)) as pool:
        futures = [pool.submit(_packed_bits_worker, _joined(chunk), geom) for chunk in chunks]
        merged = np.frombuffer(futures[0].result(), dtype=np.uint8).copy()
        for future in futures[1:]:
            merged |= np.frombuffer(future.result(), dtype=np.uint8)
    return _bits_from_bytes(merged.tobytes(), geom.num_bits)


def add_keys(bits: bitarray, keys: Sequence[str], geom: Geometry) -> None:
    """Set the bits of keys in an existing filter, in place."""
    if len(bits) != geom.num_bits:
        raise ValueError(f"filter has {len(bits)} bits, geometry needs {geom.num_bits}")
    byte_index, masks = byte_masks(np.unique(positions_array(keys, geom)))
    np.frombuffer(bits, dtype=np.uint8)[byte_index] |= masks  # a writable view of the bitarray


def byte_masks(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted distinct bit positions: the distinct byte indexes and the mask of bits in each."""
    if positions.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint8)
    byte_index = positions >> 3
    masks = np.left_shift(np.uint8(1), (positions & 7).astype(np.uint8))
    # Sorted, so positions sharing a byte are adjacent; one mask per byte makes fancy-index writes safe.
    starts = np.flatnonzero(np.r_[True, byte_index[1:] != byte_index[:-1]])
    return byte_index[starts], np.bitwise_or.reduceat(masks, starts)


def snapshot_bytes(bits: bitarray, *, error_rate: float, capacity: int, count: int) -> bytes:
    """The snapshot file: pybloom-live's BloomFilter.tofile output with this exact count."""
    geom = geometry(capacity, error_rate)
    if len(bits) != geom.num_bits:
        raise ValueError(f"filter has {len(bits)} bits, geometry needs {geom.num_bits}")
    if not 0 <= count <= capacity:
        raise ValueError(f"count {count} outside 0..capacity {capacity}")
    header = struct.pack(FILE_FMT, error_rate, geom.num_slices, geom.bits_per_slice, capacity, count)
    return header + bits.tobytes()


def build_snapshot(keys: Sequence[str], capacity: int, error_rate: float, workers: int | None = None) -> bytes:
    """Snapshot of a set of distinct keys; count is len(keys)."""
    keys = keys if isinstance(keys, list) else list(keys)
    bits = build_bits(keys, geometry(capacity, error_rate), workers)
    return snapshot_bytes(bits, error_rate=error_rate, capacity=capacity, count=len(keys))


def parse_snapshot(data: bytes) -> Snapshot:
    """Header fields and bits of a snapshot; SnapshotError when it is malformed."""
    if len(data) < HEADER_BYTES:
        raise SnapshotError(f"snapshot of {len(data)} bytes is shorter than its {HEADER_BYTES}-byte header")
    error_rate, num_slices, bits_per_slice, capacity, count = struct.unpack_from(FILE_FMT, data)
    try:
        geom = geometry(capacity, error_rate)
    except ValueError as exc:
        raise SnapshotError(f"bad header: {exc}") from None
    if geom != (num_slices, bits_per_slice):
        raise SnapshotError(f"header geometry {num_slices}x{bits_per_slice} does not follow from capacity and error rate")
    expected = HEADER_BYTES + (geom.num_bits + 7) // 8
    if len(data) != expected:
        raise SnapshotError(f"snapshot has {len(data)} bytes, its header implies {expected}")
    if count > capacity:
        raise SnapshotError(f"count {count} exceeds capacity {capacity}")
    bits = _bits_from_bytes(data[HEADER_BYTES:], geom.num_bits)
    if geom.num_bits % 8 and data[-1] >> (geom.num_bits % 8):
        raise SnapshotError("padding bits after the filter are not zero")
    return Snapshot(error_rate, num_slices, bits_per_slice, capacity, count, bits)
