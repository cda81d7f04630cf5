"""sync.bloom against pybloom-live 4.0.0 itself: same geometry, same bits, same files."""

import io
import random
import struct

import numpy as np
import pytest
from pybloom_live import BloomFilter
from pybloom_live.pybloom import make_hashfuncs

from sync import bloom

# (capacity, error_rate) -> the hash and value width pybloom-live picks for it.
GEOMETRIES = [
    (100, 0.1, "xxh128", "H"),
    (1000, 0.01, "xxh128", "H"),
    (1000, 0.001, "sha1", "H"),
    (3000, 0.003, "sha1", "H"),
    (1000, 0.0001, "sha256", "H"),
    (40000, 0.02, "sha256", "I"),
    (200, 0.00001, "sha384", "H"),
    (50000, 0.001, "sha384", "I"),
    (30000, 0.0001, "sha512", "I"),
    (30000, 0.000001, "sha512", "I"),  # 20 slices of 4 bytes: two salts
    (30000, 0.05, "sha1", "I"),
    (30000, 0.1, "xxh128", "I"),
    (20000, 0.03, "xxh128", "H"),
]


def random_numbers(count: int, seed: int) -> list[str]:
    """Distinct E.164 Chinese mobile numbers."""
    rng = random.Random(seed)
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(f"+861{rng.randrange(3 * 10**9, 10**10):010d}")
    return sorted(numbers)


def pybloom_filter(keys: list[str], capacity: int, error_rate: float) -> BloomFilter:
    bf = BloomFilter(capacity, error_rate)
    for key in keys:
        bf.add(key)
    return bf


@pytest.mark.parametrize("capacity", [1, 7, 100, 999, 1000, 12345, 10**6, 3 * 10**7])
@pytest.mark.parametrize("error_rate", [0.5, 0.1, 0.03, 0.01, 0.001, 0.0001, 1e-6, 2.0**-29])  # 2**-29: log(x, 2) != log2(x)
def test_geometry_matches_pybloom(capacity, error_rate):
    bf = BloomFilter(capacity, error_rate) if capacity <= 10**6 else None
    geom = bloom.geometry(capacity, error_rate)
    if bf is not None:
        assert geom == (bf.num_slices, bf.bits_per_slice)
    assert geom.num_bits == geom.num_slices * geom.bits_per_slice


def test_geometry_rejects_what_pybloom_rejects():
    for capacity, error_rate in [(0, 0.01), (10, 0), (10, 1), (-1, 0.5)]:
        with pytest.raises(ValueError):
            bloom.geometry(capacity, error_rate)


@pytest.mark.parametrize("capacity,error_rate,hash_name,fmt_code", GEOMETRIES)
def test_hash_choice_matches_pybloom(capacity, error_rate, hash_name, fmt_code):
    geom = bloom.geometry(capacity, error_rate)
    scheme = bloom.hash_scheme(geom)
    _, hashfn = make_hashfuncs(*geom)
    assert (scheme.hash_name, scheme.fmt_code) == (hash_name, fmt_code)
    assert hashfn().name.lower().replace("xxh3_128", "xxh128") == hash_name


@pytest.mark.parametrize("capacity,error_rate,hash_name,fmt_code", GEOMETRIES)
def test_bits_equal_pybloom_add_loop(capacity, error_rate, hash_name, fmt_code):
    keys = random_numbers(capacity, seed=capacity)
    expected = pybloom_filter(keys, capacity, error_rate)
    geom = bloom.geometry(capacity, error_rate)
    bits = bloom.build_bits(keys, geom, workers=1)
    assert len(bits) == geom.num_bits
    assert bits == expected.bitarray[: geom.num_bits]


@pytest.mark.parametrize("capacity,error_rate,hash_name,fmt_code", GEOMETRIES)
def test_key_positions_equal_pybloom_hashes(capacity, error_rate, hash_name, fmt_code):
    geom = bloom.geometry(capacity, error_rate)
    make_hashes, _ = make_hashfuncs(*geom)
    keys = random_numbers(50, seed=7) + ["+12025550143", "+8613800138000"]
    many = bloom.positions_array(keys, geom)
    for key, row in zip(keys, many):
        expected = [j * geom.bits_per_slice + v for j, v in enumerate(make_hashes(key))]
        assert bloom.key_positions(key, geom) == expected
        assert row.tolist() == expected


def test_eight_byte_values_match_pybloom_for_huge_slices():
    # 2**31 bits per slice selects 'Q'; compare hashes without allocating such a filter.
    geom = bloom.Geometry(3, 2**31 + 12345)
    make_hashes, _ = make_hashfuncs(*geom)
    assert bloom.hash_scheme(geom).fmt_code == "Q"
    for key in random_numbers(20, seed=3):
        expected = [j * geom.bits_per_slice + v for j, v in enumerate(make_hashes(key))]
        assert bloom.key_positions(key, geom) == expected


def test_keys_outside_e164_hash_like_pybloom():
    keys = ["+8613800138000", "号码", "a\nb", "", "+1 202"]
    geom = bloom.geometry(100, 0.001)
    expected = pybloom_filter(keys, 100, 0.001)
    assert bloom.build_bits(keys, geom, workers=1) == expected.bitarray[: geom.num_bits]


def test_parallel_build_equals_single_core(monkeypatch):
    monkeypatch.setattr(bloom, "PARALLEL_MIN_KEYS", 1000)
    keys = random_numbers(5000, seed=11)
    geom = bloom.geometry(6000, 0.001)
    assert bloom.build_bits(keys, geom, workers=2) == bloom.build_bits(keys, geom, workers=1)


def test_batches_give_the_same_bits(monkeypatch):
    keys = random_numbers(3000, seed=12)
    geom = bloom.geometry(3000, 0.001)
    whole = bloom.build_bits(keys, geom, workers=1)
    monkeypatch.setattr(bloom, "BATCH_KEYS", 64)
    assert bloom.build_bits(keys, geom, workers=1) == whole


def test_empty_set_builds_an_empty_filter():
    geom = bloom.geometry(100, 0.01)
    assert not bloom.build_bits([], geom).any()


def test_snapshot_is_tofile_output_with_exact_count():
    keys = random_numbers(800, seed=13)
    expected = pybloom_filter(keys, 1000, 0.001)
    expected.count = len(keys)  # pybloom's own count undercounts keys whose bits were all set
    out = io.BytesIO()
    expected.tofile(out)
    assert bloom.build_snapshot(keys, 1000, 0.001, workers=1) == out.getvalue()


def test_snapshot_loads_in_pybloom_with_every_member():
    keys = random_numbers(2000, seed=14)
    data = bloom.build_snapshot(keys, 2500, 0.001)
    loaded = BloomFilter.fromfile(io.BytesIO(data))
    assert len(loaded) == 2000
    assert all(key in loaded for key in keys)
    assert (loaded.capacity, loaded.error_rate) == (2500, 0.001)


def test_parse_snapshot_round_trips():
    keys = random_numbers(500, seed=15)
    geom = bloom.geometry(1000, 0.01)
    bits = bloom.build_bits(keys, geom)
    data = bloom.snapshot_bytes(bits, error_rate=0.01, capacity=1000, count=500)
    snap = bloom.parse_snapshot(data)
    assert (snap.error_rate, snap.capacity, snap.count, snap.geometry) == (0.01, 1000, 500, geom)
    assert snap.bits == bits
    assert all(bloom.contains(snap.bits, key, geom) for key in keys)


def test_lookup_misses_most_non_members():
    keys = random_numbers(1000, seed=16)
    geom = bloom.geometry(1000, 0.001)
    bits = bloom.build_bits(keys, geom)
    strangers = [k for k in random_numbers(5000, seed=17) if k not in set(keys)]
    false_positives = sum(bloom.contains(bits, key, geom) for key in strangers)
    assert false_positives < 0.005 * len(strangers)


def test_add_keys_equals_building_the_union():
    geom = bloom.geometry(2000, 0.001)
    first, second = random_numbers(1000, seed=18), random_numbers(700, seed=19)
    bits = bloom.build_bits(first, geom)
    bloom.add_keys(bits, second, geom)
    assert bits == bloom.build_bits(first + second, geom)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data: data[:30],  # shorter than the header
        lambda data: data[:-1],  # bits cut short
        lambda data: data + b"\0",  # one byte too many
        lambda data: struct.pack("<dQQQQ", 0.001, 9, 1438, 1000, 5) + data[40:],  # k does not fit
        lambda data: struct.pack("<dQQQQ", 0.001, 10, 1438, 1000, 1001) + data[40:],  # count > capacity
        lambda data: struct.pack("<dQQQQ", 1.5, 10, 1438, 1000, 5) + data[40:],  # error rate out of range
        lambda data: data[:-1] + bytes([data[-1] | 0x80]),  # padding bit set (m = 14380, 4 pad bits)
    ],
)
def test_parse_snapshot_rejects_malformed_files(mutate):
    data = bloom.build_snapshot(random_numbers(5, seed=20), 1000, 0.001)
    with pytest.raises(bloom.SnapshotError):
        bloom.parse_snapshot(mutate(data))


def test_snapshot_bytes_refuses_count_beyond_capacity():
    bits = bloom.build_bits([], bloom.geometry(10, 0.01))
    with pytest.raises(ValueError):
        bloom.snapshot_bytes(bits, error_rate=0.01, capacity=10, count=11)


def test_positions_array_shape_and_dtype():
    geom = bloom.geometry(1000, 0.001)
    positions = bloom.positions_array(random_numbers(3, seed=21), geom)
    assert positions.shape == (3, geom.num_slices) and positions.dtype == np.int64
    assert bloom.positions_array([], geom).shape == (0, geom.num_slices)
