"""Benchmark of list sync: filter builds against pybloom-live, delta sizes, a simulated day.

    python bench/sync_bench.py --quick   # under a minute
    python bench/sync_bench.py           # 1 M and 10 M builds, a 30 M-number list

Numbers are seeded random Chinese mobiles in E.164 ("+86" and 11 digits).
The last line sums it up:
build_speedup=<one-core build vs pybloom-live add loop> digest_overhead=<build / digests alone>
delta_bound_ratio=<worst delta bytes / (1.05 x information bound + 64); target <= 1> bytes_per_changed_number=<daily delta / changes>
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import xxhash
from pybloom_live import BloomFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync import bloom, delta  # noqa: E402

ERROR_RATE = 0.001  # the error rate lists are published with
HEADROOM = 1.2  # capacity over count: about 40 days of net growth before a new generation
DAILY_ADDED = 163_000  # numbers newly blocked per day (PRODUCT.md)
DAILY_REMOVED = 16_000  # numbers leaving a list per day
FULL_LIST = 30_000_000  # numbers on the simulated list
PYBLOOM_SAMPLE = 1_000_000  # full mode: keys timed through pybloom-live's add loop
DELTA_BITS = 1_437_760  # m of a 100,000-number list at 0.001: 10 slices of 143,776 bits
DELTA_COUNTS = [10, 100, 1_000, 10_000, 100_000]


def numbers(count: int, rng: np.random.Generator) -> list[str]:
    """count distinct E.164 mobiles: +86 1[3-9]x xxxx xxxx."""
    found = np.empty(0, dtype=np.int64)
    while found.size < count:
        more = rng.integers(13_000_000_000, 20_000_000_000, size=int((count - found.size) * 1.02) + 16)
        found = np.unique(np.concatenate([found, more]))
    picked = rng.permutation(found)[:count]
    return ["+86" + str(n) for n in picked.tolist()]


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Result and best wall time of repeat runs: the machine is shared, the minimum is the cost."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return result, best


def digest_only(keys: list[str], geom: bloom.Geometry) -> float:
    """Seconds for salt.copy(); update(key); digest() per salt per key: the hashing floor."""
    scheme = bloom.hash_scheme(geom)
    key_bytes = [k.encode() for k in keys]
    salts = [xxhash.xxh128(p) if scheme.hash_name == "xxh128" else hashlib.new(scheme.hash_name, p)
             for p in scheme.prefixes]
    start = time.perf_counter()
    for salt in salts:
        for key in key_bytes:
            h = salt.copy()
            h.update(key)
            h.digest()
    return time.perf_counter() - start


def pybloom_seconds_per_key(keys: list[str], capacity: int) -> tuple[float, BloomFilter]:
    """Seconds per key of pybloom-live's own add loop, and the filter it built."""
    bf = BloomFilter(capacity, ERROR_RATE)
    add = bf.add
    start = time.perf_counter()
    for key in keys:
        add(key)
    return (time.perf_counter() - start) / len(keys), bf


def bench_builds(sizes: list[int], quick: bool, rng: np.random.Generator) -> tuple[float, float]:
    print(f"\n== full build, error rate {ERROR_RATE}, capacity = count x {HEADROOM}; best of 3 below 1 M keys")
    speedup, overhead = float("inf"), 0.0  # the worst over all sizes
    for size in sizes:
        keys = numbers(size, rng)
        capacity = int(size * HEADROOM)
        geom = bloom.geometry(capacity, ERROR_RATE)
        scheme = bloom.hash_scheme(geom)
        repeat = 3 if size <= PYBLOOM_SAMPLE else 1
        one, t_one = timed(bloom.build_bits, keys, geom, workers=1, repeat=repeat)
        both, t_all = timed(bloom.build_bits, keys, geom, repeat=repeat)
        assert one == both
        t_digest = min(digest_only(keys, geom) for _ in range(repeat))
        sample = keys if quick or size <= PYBLOOM_SAMPLE else keys[:PYBLOOM_SAMPLE]
        per_key, bf = pybloom_seconds_per_key(sample, capacity)
        t_pybloom = per_key * size
        how = "all keys" if len(sample) == size else f"timed on {len(sample):,} keys, extrapolated per key"
        if len(sample) == size:
            assert bf.bitarray[: geom.num_bits] == one, "bits differ from pybloom-live"
            how += ", bits identical"
        speedup, overhead = min(speedup, t_pybloom / t_one), max(overhead, t_one / t_digest)
        print(f"{size:>11,} numbers  m={geom.num_bits:,} bits  {scheme.hash_name}/{scheme.fmt_code}")
        print(f"    pybloom-live add loop  {t_pybloom:8.2f} s  ({how})")
        print(f"    digests alone          {t_digest:8.2f} s  (keys already UTF-8; the build encodes them)")
        print(f"    build, 1 core          {t_one:8.2f} s  ({t_pybloom / t_one:.2f}x pybloom, "
              f"{t_one / t_digest:.2f}x digests)")
        print(f"    build, {bloom.default_workers()} cores         {t_all:8.2f} s")
        del keys, one, both, bf
    return speedup, overhead


def bound_bytes(num_bits: int, count: int) -> float:
    log_choose = math.lgamma(num_bits + 1) - math.lgamma(count + 1) - math.lgamma(num_bits - count + 1)
    return log_choose / math.log(2) / 8


def bench_delta_sizes(rng: np.random.Generator) -> float:
    print(f"\n== delta size vs information bound log2(C(m,d))/8, m = {DELTA_BITS:,}")
    print(f"{'d':>9} {'bytes':>9} {'bound':>9} {'header':>7} {'payload/bound':>14} {'bytes/(1.05b+64)':>17}")
    worst = 0.0
    for count in DELTA_COUNTS:
        positions = np.sort(rng.choice(DELTA_BITS, size=count, replace=False))
        body = delta.encode(positions, list_name="spam", from_version=1000, to_version=1001,
                            num_bits=DELTA_BITS, snapshot_sha256=bytes(32))
        header_len = delta.decode_header(body)[1]
        bound = bound_bytes(DELTA_BITS, count)
        ratio = (len(body) - header_len) / bound
        worst = max(worst, len(body) / (1.05 * bound + 64))
        print(f"{count:>9,} {len(body):>9,} {bound:>9,.0f} {header_len:>7} {ratio:>14.4f} "
              f"{len(body) / (1.05 * bound + 64):>17.3f}")
    return worst


def bench_incremental(list_size: int, rng: np.random.Generator) -> None:
    """What a publish costs with 1 % changes: additions only (set their bits) or with
    removals (a Bloom filter cannot forget: rebuild from the members), against a full build."""
    print(f"\n== publish of 1 % changes on a {list_size:,}-number list (what blocklist/publish.py does)")
    every = numbers(list_size + list_size // 100, rng)
    members, arriving = every[:list_size], every[list_size:]
    capacity = int(list_size * HEADROOM * 1.1)
    geom = bloom.geometry(capacity, ERROR_RATE)
    old_bits, t_full = timed(bloom.build_bits, members, geom)

    def encode(new_bits) -> bytes:
        return delta.encode(delta.diff_positions(old_bits, new_bits), list_name="spam", from_version=1,
                            to_version=2, num_bits=geom.num_bits, snapshot_sha256=bytes(32))

    def additions_only() -> bytes:
        bits = old_bits.copy()
        bloom.add_keys(bits, arriving, geom)
        return encode(bits)

    def with_removals() -> bytes:
        return encode(bloom.build_bits(members[list_size // 200:] + arriving[: list_size // 200], geom))

    _, t_add = timed(additions_only, repeat=3)
    _, t_remove = timed(with_removals)
    print(f"    full build, all cores          {t_full:8.2f} s")
    print(f"    +1 % additions only            {t_add:8.2f} s  ({t_full / t_add:.0f}x cheaper than a full build)")
    print(f"    +0.5 % / -0.5 % (rebuild)      {t_remove:8.2f} s  (removals cost a full build)")


def bench_day(list_size: int, added: int, removed: int, scale_note: str, rng: np.random.Generator) -> float:
    print(f"\n== one day on a {list_size:,}-number list: +{added:,} / -{removed:,}{scale_note}")
    every = numbers(list_size + added, rng)
    old_keys = every[:list_size]
    new_keys = every[removed:]  # the first `removed` leave, the last `added` arrive
    capacity = int(list_size * HEADROOM)
    geom = bloom.geometry(capacity, ERROR_RATE)
    old_bits, t_old = timed(bloom.build_bits, old_keys, geom)
    new_bits, t_new = timed(bloom.build_bits, new_keys, geom)
    snapshot = bloom.snapshot_bytes(new_bits, error_rate=ERROR_RATE, capacity=capacity, count=len(new_keys))
    target_sha = hashlib.sha256(snapshot).digest()

    def publish() -> bytes:
        positions = delta.diff_positions(old_bits, new_bits)
        return delta.encode(positions, list_name="spam", from_version=1, to_version=2,
                            num_bits=geom.num_bits, snapshot_sha256=target_sha)

    body, t_encode = timed(publish)
    client_bits = old_bits.copy()

    def client() -> None:
        header, positions = delta.decode(body)
        delta.apply(client_bits, positions)
        rebuilt = bloom.snapshot_bytes(client_bits, error_rate=ERROR_RATE, capacity=capacity, count=len(new_keys))
        assert hashlib.sha256(rebuilt).digest() == header.snapshot_sha256

    _, t_apply = timed(client)
    changed = added + removed
    print(f"    filter m={geom.num_bits:,} bits, capacity {capacity:,}")
    print(f"    snapshot               {len(snapshot) / 1e6:8.2f} MB")
    print(f"    daily delta            {len(body) / 1e6:8.3f} MB  ({delta.decode_header(body)[0].count:,} bits flipped, "
          f"{len(body) / len(snapshot) * 100:.2f} % of the snapshot)")
    print(f"    build, all cores       {t_old:8.2f} s (old)  {t_new:.2f} s (new)")
    print(f"    diff + encode          {t_encode:8.2f} s")
    print(f"    client decode+apply+hash {t_apply:6.2f} s")
    return len(body) / changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--seed", type=int, default=20260528)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"machine: {os.cpu_count()} cores ({bloom.default_workers()} usable) {cpu}; Python {platform.python_version()}, "
          f"numpy {np.__version__}; mode {'quick' if args.quick else 'full'}")

    speedup, overhead = bench_builds([200_000] if args.quick else [1_000_000, 10_000_000], args.quick, rng)
    ratio = bench_delta_sizes(rng)
    bench_incremental(200_000 if args.quick else 1_000_000, rng)
    if args.quick:
        scale = 1_000_000 / FULL_LIST
        per_change = bench_day(1_000_000, round(DAILY_ADDED * scale), round(DAILY_REMOVED * scale),
                               " (quick: scaled down 30x from 30 M, same daily churn rate)", rng)
    else:
        per_change = bench_day(FULL_LIST, DAILY_ADDED, DAILY_REMOVED, "", rng)
    print(f"build_speedup={speedup:.2f} digest_overhead={overhead:.2f} "
          f"delta_bound_ratio={ratio:.4f} bytes_per_changed_number={per_change:.2f}")


if __name__ == "__main__":
    main()
