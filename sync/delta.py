"""The delta codec: bit positions where two filter versions differ, Golomb–Rice coded.

The byte format is written down in docs/PROTOCOL.md, section 6. Positions
are sorted int64 numpy arrays; filter bits are little-endian ``bitarray``s as
in ``sync.bloom``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from bitarray import bitarray

from sync.bloom import byte_masks

MAGIC = b"CMDL"  # "CallMark DeLta", first 4 bytes of every delta
FORMAT_VERSION = 1  # bumped on any change to the layout
SHA256_BYTES = 32
VARINT_MAX_BYTES = 10  # enough for any 64-bit value
RICE_WINDOW = 2  # the encoder tries Kiely's r* ± this many and keeps the shortest
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2


class DeltaError(ValueError):
    """A delta body that is not well-formed (truncated, trailing bytes, out of range, …)."""


@dataclass(frozen=True)
class DeltaHeader:
    """Everything in a delta but the positions."""

    list_name: str
    from_version: int
    to_version: int
    num_bits: int  # m: bits of both filters
    count: int  # d: positions that flip
    rice_k: int  # Rice parameter r
    snapshot_sha256: bytes  # SHA-256 of the target version's snapshot


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint of negative value {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    """Cursor over a delta body that raises DeltaError instead of running off the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        if size > len(self.data) - self.offset:
            raise DeltaError(f"truncated: {what} needs {size} bytes, {len(self.data) - self.offset} left")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def varint(self, what: str) -> int:
        value = 0
        for shift in range(0, 7 * VARINT_MAX_BYTES, 7):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise DeltaError(f"{what}: varint longer than {VARINT_MAX_BYTES} bytes")


def rice_parameter(gaps: np.ndarray, num_bits: int) -> int:
    """The Rice parameter giving the shortest body for these gaps (PROTOCOL.md 6.3)."""
    d = gaps.size
    if d == 0:
        return 0
    mean = max(num_bits - d, 0) / d
    theta = mean / (mean + 1)
    if theta <= 0:
        start = 0
    else:
        start = max(0, 1 + math.floor(math.log2(math.log(GOLDEN_RATIO - 1) / math.log(theta))))
    limit = num_bits.bit_length()
    candidates = range(max(0, start - RICE_WINDOW), min(limit, start + RICE_WINDOW) + 1)
    # Exact body size in bits: unary quotients plus one terminator and r remainder bits each.
    return min(candidates, key=lambda r: int((gaps >> r).sum()) + d * (r + 1))


def _as_positions(positions: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(positions, dtype=np.int64).reshape(-1)


def encode(
    positions: Sequence[int] | np.ndarray,
    *,
    list_name: str,
    from_version: int,
    to_version: int,
    num_bits: int,
    snapshot_sha256: bytes,
) -> bytes:
    """The delta body for strictly increasing positions < num_bits."""
    positions = _as_positions(positions)
    d = positions.size
    if len(snapshot_sha256) != SHA256_BYTES:
        raise ValueError("snapshot_sha256 must be 32 bytes")
    if d and (positions[0] < 0 or positions[-1] >= num_bits):
        raise ValueError(f"positions must lie in 0..{num_bits - 1}")
    gaps = np.diff(positions, prepend=-1) - 1
    if d and gaps.min() < 0:
        raise ValueError("positions must be strictly increasing")
    r = rice_parameter(gaps, num_bits)
    name = list_name.encode("utf-8")
    header = b"".join(
        [
            MAGIC,
            _varint(FORMAT_VERSION),
            _varint(len(name)),
            name,
            _varint(from_version),
            _varint(to_version),
            _varint(num_bits),
            _varint(d),
            _varint(r),
            snapshot_sha256,
        ]
    )
    if d == 0:
        return header
    remainder_bits = np.empty((d, r), dtype=np.uint8)
    for j in range(r):  # column by column keeps memory at one byte per bit
        remainder_bits[:, j] = (gaps >> j) & 1
    quotients = gaps >> r
    terminators = np.cumsum(quotients + 1) - 1  # stream index of each quotient's closing zero-bit
    unary = np.ones(int(terminators[-1]) + 1, dtype=np.uint8)
    unary[terminators] = 0
    return (
        header
        + np.packbits(remainder_bits.reshape(-1), bitorder="little").tobytes()
        + np.packbits(unary, bitorder="little").tobytes()
    )


def decode_header(data: bytes) -> tuple[DeltaHeader, int]:
    """The header of a delta body and the offset where its sections start."""
    reader = _Reader(data)
    if reader.take(len(MAGIC), "magic") != MAGIC:
        raise DeltaError("not a CallMark delta (bad magic)")
    version = reader.varint("format version")
    if version != FORMAT_VERSION:
        raise DeltaError(f"unsupported delta format version {version}")
    try:
        list_name = reader.take(reader.varint("name length"), "list name").decode("utf-8")
    except UnicodeDecodeError:
        raise DeltaError("list name is not UTF-8") from None
    from_version = reader.varint("from version")
    to_version = reader.varint("to version")
    num_bits = reader.varint("number of bits")
    count = reader.varint("number of positions")
    rice_k = reader.varint("Rice parameter")
    sha = reader.take(SHA256_BYTES, "snapshot SHA-256")
    if count > num_bits:
        raise DeltaError(f"{count} positions cannot fit in {num_bits} bits")
    if rice_k > num_bits.bit_length():
        raise DeltaError(f"Rice parameter {rice_k} exceeds the bit length of m = {num_bits}")
    return DeltaHeader(list_name, from_version, to_version, num_bits, count, rice_k, sha), reader.offset


def decode(data: bytes) -> tuple[DeltaHeader, np.ndarray]:
    """Header and sorted int64 positions of a delta body; DeltaError when malformed."""
    header, offset = decode_header(data)
    d, r, m = header.count, header.rice_k, header.num_bits
    if d == 0:
        if offset != len(data):
            raise DeltaError(f"{len(data) - offset} trailing bytes after an empty delta")
        return header, np.empty(0, dtype=np.int64)
    remainder_len = (d * r + 7) // 8
    section = _Reader(data)
    section.offset = offset
    remainder_bytes = np.frombuffer(section.take(remainder_len, "remainder section"), dtype=np.uint8)
    unary_bytes = np.frombuffer(data, dtype=np.uint8, offset=section.offset)
    if unary_bytes.size * 8 < d:
        raise DeltaError(f"truncated: quotient section cannot hold {d} terminators")

    remainder_bits = np.unpackbits(remainder_bytes, bitorder="little")
    if remainder_bits[d * r :].any():
        raise DeltaError("non-zero padding after the remainder section")
    remainder_bits = remainder_bits[: d * r].reshape(d, r)
    remainders = np.zeros(d, dtype=np.int64)
    for j in range(r):
        remainders |= remainder_bits[:, j].astype(np.int64) << j

    unary = np.unpackbits(unary_bytes, bitorder="little")
    zeros = np.flatnonzero(unary == 0)
    if zeros.size < d:
        raise DeltaError(f"truncated: {zeros.size} of {d} quotients present")
    last = int(zeros[d - 1])
    if last // 8 != unary_bytes.size - 1:
        raise DeltaError(f"{unary_bytes.size - 1 - last // 8} trailing bytes after the quotient section")
    if unary[last + 1 :].any():
        raise DeltaError("non-zero padding after the quotient section")
    terminators = zeros[:d].astype(np.int64)
    quotients = np.diff(terminators, prepend=-1) - 1
    if int(quotients.max()) > (m >> r):
        raise DeltaError(f"a gap exceeds the filter size m = {m}")
    gaps = (quotients << r) | remainders
    positions = np.cumsum(gaps + 1) - 1
    if int(positions[-1]) >= m:
        raise DeltaError(f"position {int(positions[-1])} out of range for m = {m}")
    return header, positions


def diff_positions(old: bitarray, new: bitarray) -> np.ndarray:
    """Sorted int64 positions where two filters of equal size differ (their XOR)."""
    if len(old) != len(new):
        raise ValueError(f"filters differ in size: {len(old)} and {len(new)} bits")
    flipped = np.bitwise_xor(np.frombuffer(old, dtype=np.uint8), np.frombuffer(new, dtype=np.uint8))
    byte_index = np.flatnonzero(flipped)
    rows, bit = np.nonzero(np.unpackbits(flipped[byte_index], bitorder="little").reshape(-1, 8))
    return byte_index[rows].astype(np.int64) * 8 + bit


def apply(bits: bitarray, positions: Sequence[int] | np.ndarray) -> None:
    """Flip (XOR) the given strictly increasing positions of bits, in place."""
    positions = _as_positions(positions)
    if positions.size == 0:
        return
    if positions[0] < 0 or positions[-1] >= len(bits) or (np.diff(positions) <= 0).any():
        raise ValueError(f"positions must be strictly increasing within 0..{len(bits) - 1}")
    byte_index, masks = byte_masks(positions)
    np.frombuffer(bits, dtype=np.uint8)[byte_index] ^= masks  # a writable view of the bitarray
