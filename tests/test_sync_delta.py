"""sync.delta: round trips, size against the information bound, rejection of bad bodies,
and the test vectors of docs/PROTOCOL.md recomputed from the code.

Run this file as a script to print the vectors in the layout the document uses.
"""

import base64
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import bloom, delta

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
FILTER_BITS = 14_377_588  # m of a 1,000,000-number list at error rate 0.001
SHA = bytes(range(32))  # a stand-in target hash where the test needs none in particular
SIZE_SLACK = 1.05  # delta bytes may exceed the information bound by 5 % ...
SIZE_OVERHEAD = 64  # ... plus this many bytes of header


def encode(positions, num_bits=FILTER_BITS, **overrides):
    fields = dict(list_name="spam", from_version=1, to_version=2, num_bits=num_bits, snapshot_sha256=SHA)
    fields.update(overrides)
    return delta.encode(positions, **fields)


def random_positions(num_bits: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_bits, size=count, replace=False)).astype(np.int64)


def information_bound_bytes(num_bits: int, count: int) -> float:
    """log2(C(m, d)) / 8: no code can do better on average for d uniform positions of m."""
    log_choose = math.lgamma(num_bits + 1) - math.lgamma(count + 1) - math.lgamma(num_bits - count + 1)
    return log_choose / math.log(2) / 8


@pytest.mark.parametrize(
    "num_bits,positions",
    [
        (100, []),
        (1, [0]),
        (100, [0]),
        (100, [99]),
        (100, list(range(100))),
        (100, [0, 1, 2, 50, 98, 99]),
        (2**40, [0, 2**39, 2**40 - 1]),
    ],
)
def test_round_trip_of_edge_cases(num_bits, positions):
    data = encode(positions, num_bits=num_bits)
    header, decoded = delta.decode(data)
    assert decoded.tolist() == positions
    assert (header.num_bits, header.count, header.snapshot_sha256) == (num_bits, len(positions), SHA)


def test_header_fields_round_trip():
    data = encode([5, 9], list_name="ring_once", from_version=300, to_version=2**40, num_bits=1000)
    header, _ = delta.decode(data)
    assert (header.list_name, header.from_version, header.to_version) == ("ring_once", 300, 2**40)
    assert delta.decode_header(data)[0] == header


@pytest.mark.parametrize("count", [10, 100, 1000, 10_000, 100_000])
def test_size_within_bound_of_information(count):
    positions = random_positions(FILTER_BITS // 10, count, seed=count)  # 1.44 M bits: 100,000 numbers
    data = encode(positions, num_bits=FILTER_BITS // 10)
    assert len(data) <= SIZE_SLACK * information_bound_bytes(FILTER_BITS // 10, count) + SIZE_OVERHEAD
    assert np.array_equal(delta.decode(data)[1], positions)


@pytest.mark.parametrize("count", [1000, 300_000])
def test_size_within_bound_on_a_large_filter(count):
    positions = random_positions(FILTER_BITS, count, seed=count)
    data = encode(positions)
    assert len(data) <= SIZE_SLACK * information_bound_bytes(FILTER_BITS, count) + SIZE_OVERHEAD
    assert np.array_equal(delta.decode(data)[1], positions)


@pytest.mark.parametrize("count", [1, 30, 3000, 500_000])
def test_rice_parameter_is_the_exact_optimum(count):
    positions = random_positions(FILTER_BITS // 10, count, seed=count)
    gaps = np.diff(positions, prepend=-1) - 1
    chosen = delta.rice_parameter(gaps, FILTER_BITS // 10)
    cost = [int((gaps >> r).sum()) + count * (r + 1) for r in range(25)]
    assert cost[chosen] == min(cost)


def test_diff_and_apply_turn_one_version_into_the_next():
    geom = bloom.geometry(5000, 0.001)
    rng = np.random.default_rng(1)
    numbers = [f"+861{n:010d}" for n in rng.integers(3 * 10**9, 10**10, size=4500)]
    old_keys, new_keys = numbers[:4000], numbers[300:]
    old, new = bloom.build_bits(old_keys, geom), bloom.build_bits(new_keys, geom)
    target = bloom.snapshot_bytes(new, error_rate=0.001, capacity=5000, count=len(new_keys))
    positions = delta.diff_positions(old, new)
    data = encode(positions, num_bits=geom.num_bits, snapshot_sha256=hashlib.sha256(target).digest())
    header, decoded = delta.decode(data)
    delta.apply(old, decoded)
    assert old == new
    rebuilt = bloom.snapshot_bytes(old, error_rate=0.001, capacity=5000, count=len(new_keys))
    assert hashlib.sha256(rebuilt).digest() == header.snapshot_sha256


def test_diff_of_equal_filters_is_empty():
    bits = bloom.build_bits(["+8613800138000"], bloom.geometry(100, 0.01))
    assert delta.diff_positions(bits, bits.copy()).size == 0


def test_apply_rejects_unsorted_or_out_of_range_positions():
    bits = bloom.build_bits([], bloom.geometry(100, 0.01))
    for positions in ([3, 3], [5, 2], [-1], [len(bits)]):
        with pytest.raises(ValueError):
            delta.apply(bits, positions)


def test_encode_rejects_non_increasing_and_out_of_range_positions():
    for positions in ([4, 4], [9, 3], [-1, 2], [FILTER_BITS]):
        with pytest.raises(ValueError):
            encode(positions)
    with pytest.raises(ValueError):
        encode([1], snapshot_sha256=b"short")


def test_every_truncation_is_rejected():
    data = encode(random_positions(5000, 40, seed=2), num_bits=5000)
    for end in range(len(data)):
        with pytest.raises(delta.DeltaError):
            delta.decode(data[:end])


@pytest.mark.parametrize("extra", [b"\0", b"\xff", b"\0\0\0\0"])
def test_trailing_garbage_is_rejected(extra):
    for positions in ([], [1, 2, 3000]):
        with pytest.raises(delta.DeltaError):
            delta.decode(encode(positions, num_bits=5000) + extra)


def header_bytes(num_bits: int, count: int, rice_k: int, magic: bytes = delta.MAGIC, version: int = 1) -> bytes:
    """A delta header written by hand, to build bodies the encoder never makes."""
    varints = [version, 4]
    head = b"".join(delta._varint(v) for v in varints) + b"spam"
    tail = b"".join(delta._varint(v) for v in [1, 2, num_bits, count, rice_k])
    return magic + head + tail + SHA


@pytest.mark.parametrize(
    "body,reason",
    [
        (header_bytes(10, 1, 0) + bytes([0xFF, 0b0000_0011]), "out of range"),  # q = 10: position 10, m = 10
        (header_bytes(100, 1, 4) + bytes([0b0000_1111]) + bytes([0xFF] * 7) + b"\x00", "exceeds the filter"),
        (header_bytes(100, 1, 8), "Rice parameter"),  # r = 8 > bit length of 100
        (header_bytes(100, 2, 1) + bytes([0b0000_0100]) + bytes([0b0000_0000]), "padding after the remainder"),
        (header_bytes(100, 2, 0) + bytes([0b1000_0000]), "padding after the quotient"),
        (header_bytes(100, 2, 0) + bytes([0b0000_0000, 0]), "trailing"),
        (header_bytes(100, 3, 0) + bytes([0b1111_1100]), "truncated"),  # two of three quotients
        (header_bytes(3, 4, 0) + b"\x00", "cannot fit"),  # d > m
        (header_bytes(100, 1, 0, magic=b"CMDX") + b"\x00", "magic"),
        (header_bytes(100, 1, 0, version=2) + b"\x00", "version"),
        (delta.MAGIC + b"\x80" * 11, "varint longer"),
        (delta.MAGIC + b"\x01\x02\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_bodies_are_rejected(body, reason):
    with pytest.raises(delta.DeltaError, match=reason):
        delta.decode(body)


def test_decoded_positions_are_strictly_increasing_by_construction():
    # Gaps are coded minus one, so every body that decodes yields increasing positions.
    rng = np.random.default_rng(3)
    for _ in range(200):
        body = header_bytes(4096, 8, 3) + bytes(3) + bytes(rng.integers(0, 256, size=3, dtype=np.uint8))
        try:
            _, positions = delta.decode(body)
        except delta.DeltaError:
            continue
        assert (np.diff(positions) > 0).all()


# ---------------------------------------------------------------- test vectors

VECTOR_KEY = "+8613800138000"
SNAPSHOT_MEMBERS = ["+8613800138000", "+8613912345678", "+12025550143", "+442079460000", "+4008001234"]
DELTA_MEMBERS = [k for k in SNAPSHOT_MEMBERS if k != "+12025550143"] + ["+8618612345678"]
MANIFEST_SEED = bytes(range(32))  # TEST ONLY
NEXT_SEED = b"\xff" * 32  # TEST ONLY
PUBLISHED_AT = "2026-05-28T09:30:00Z"


def canonical_json(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def key_document(seed: bytes) -> tuple[Ed25519PrivateKey, str, str]:
    """Private key, base64 public key and key id of a seed."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(raw).decode(), hashlib.sha256(raw).hexdigest()[:16]


def compute_vectors() -> dict[str, dict[str, str]]:
    """Every vector of PROTOCOL.md section 9, by block."""
    ints = lambda values: ", ".join(str(v) for v in values)  # noqa: E731
    blocks: dict[str, dict[str, str]] = {"BLOOM": {}, "SNAPSHOT": {}, "DELTA": {}, "MANIFEST": {}}

    out = blocks["BLOOM"]
    for capacity, error_rate in [(1000, 0.01), (1000, 0.001), (1000, 0.0001), (1000000, 0.001), (1000000, 0.0001)]:
        geom = bloom.geometry(capacity, error_rate)
        scheme = bloom.hash_scheme(geom)
        out[f"geom.{capacity}/{error_rate}"] = f"{geom.num_slices}, {geom.bits_per_slice}, {scheme.hash_name}, {scheme.fmt_code}"
    for capacity, error_rate in [(1000, 0.01), (1000, 0.001), (1000, 0.0001), (200, 0.00001), (1000000, 0.0001)]:
        scheme = bloom.hash_scheme(bloom.geometry(capacity, error_rate))
        out[f"prefix0.{scheme.hash_name}"] = scheme.prefixes[0].hex()
    for capacity, error_rate in [(1000, 0.01), (1000, 0.001), (1000000, 0.001)]:
        geom = bloom.geometry(capacity, error_rate)
        scheme = bloom.hash_scheme(geom)
        out[f"digest0.{capacity}/{error_rate}"] = scheme.digests([VECTOR_KEY.encode()])[0].hex()
        out[f"positions.{capacity}/{error_rate}"] = ints(bloom.key_positions(VECTOR_KEY, geom))

    out = blocks["SNAPSHOT"]
    snapshot = bloom.build_snapshot(SNAPSHOT_MEMBERS, 1000, 0.001)
    parsed = bloom.parse_snapshot(snapshot)
    out["snapshot.header"] = snapshot[: bloom.HEADER_BYTES].hex()
    out["snapshot.length"] = str(len(snapshot))
    out["snapshot.set_bits"] = ints(parsed.bits.search(1))
    out["snapshot.sha256"] = hashlib.sha256(snapshot).hexdigest()

    out = blocks["DELTA"]
    target = bloom.build_snapshot(DELTA_MEMBERS, 1000, 0.001)
    positions = delta.diff_positions(parsed.bits, bloom.parse_snapshot(target).bits)
    body = delta.encode(
        positions,
        list_name="spam",
        from_version=1,
        to_version=2,
        num_bits=parsed.geometry.num_bits,
        snapshot_sha256=hashlib.sha256(target).digest(),
    )
    out["varint.300"] = delta._varint(300).hex()
    out["delta.positions"] = ints(positions.tolist())
    out["delta.rice_k"] = str(delta.decode(body)[0].rice_k)
    out["delta.target_sha256"] = hashlib.sha256(target).hexdigest()
    out["delta.body"] = body.hex()

    out = blocks["MANIFEST"]
    private, public_b64, key_id = key_document(MANIFEST_SEED)
    next_private, next_b64, next_id = key_document(NEXT_SEED)
    manifest = {
        "list": "spam",
        "version": 1,
        "generation": 1,
        "error_rate": parsed.error_rate,
        "capacity": parsed.capacity,
        "count": parsed.count,
        "num_slices": parsed.num_slices,
        "bits_per_slice": parsed.bits_per_slice,
        "sha256": hashlib.sha256(snapshot).hexdigest(),
        "snapshot_bytes": len(snapshot),
        "published_at": PUBLISHED_AT,
        "key_id": key_id,
    }
    statement = {
        "purpose": "callmark-signing-key",
        "algorithm": "ed25519",
        "key_id": next_id,
        "public_key": next_b64,
        "endorsed_by": key_id,
        "issued_at": PUBLISHED_AT,
    }
    out["key.public_key"] = public_b64
    out["key.key_id"] = key_id
    out["manifest.canonical"] = canonical_json(manifest)
    out["manifest.signature"] = base64.b64encode(private.sign(canonical_json(manifest).encode())).decode()
    out["next.public_key"] = next_b64
    out["next.key_id"] = next_id
    out["endorsement.canonical"] = canonical_json(statement)
    out["endorsement.signature"] = base64.b64encode(private.sign(canonical_json(statement).encode())).decode()
    return blocks


def document_vectors(text: str) -> dict[str, str]:
    """The `name = value` lines of every ```vectors block of PROTOCOL.md."""
    found: dict[str, str] = {}
    for block in re.findall(r"```vectors\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            name, _, value = line.partition(" = ")
            assert name not in found, f"vector {name} appears twice"
            found[name.strip()] = value.strip()
    return found


def test_protocol_document_vectors_match_the_code():
    computed = {name: value for block in compute_vectors().values() for name, value in block.items()}
    assert document_vectors(PROTOCOL.read_text(encoding="utf-8")) == computed


def test_vector_snapshot_loads_in_pybloom():
    from io import BytesIO

    from pybloom_live import BloomFilter

    loaded = BloomFilter.fromfile(BytesIO(bloom.build_snapshot(SNAPSHOT_MEMBERS, 1000, 0.001)))
    assert all(key in loaded for key in SNAPSHOT_MEMBERS)


def test_vector_signatures_verify():
    blocks = compute_vectors()["MANIFEST"]
    public = Ed25519PrivateKey.from_private_bytes(MANIFEST_SEED).public_key()
    public.verify(base64.b64decode(blocks["manifest.signature"]), blocks["manifest.canonical"].encode())
    public.verify(base64.b64decode(blocks["endorsement.signature"]), blocks["endorsement.canonical"].encode())


if __name__ == "__main__":
    for block_name, block in compute_vectors().items():
        print(f"VECTORS-{block_name}")
        for name, value in block.items():
            print(f"{name} = {value}")
