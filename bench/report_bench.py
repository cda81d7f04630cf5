"""Monthly report benchmark: `GET /v1/public/reports/<YYYY-MM>` for a month of 2,000,000
complaints answers from counters, not by reading complaints.

    python bench/report_bench.py --quick   # 20,000 complaints stored; under a minute
    python bench/report_bench.py           # 200,000 complaints stored

It starts its own Redis 7 and `python app.py`. The month's counters are those of 2,000,000
complaints (a device once per number per day; per day, per tag, cases per agency; the report
statistics' daily counts of numbers marked and ring-once numbers), written directly; beside
them the month holds real complaints filed through `complaints.file_imported`, pipelined, in
two steps (none, then all), to show that the answer does not depend on how many are stored.
The current month is computed on every request; a past month is frozen on its first one.
Baseline in the same run: `GET /healthz`, the route that does least.
Final line: report_ms_p50=<ms> report_ms_p99=<ms> frozen_ms_p50=<ms> healthz_ms_p50=<ms>
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_app, machine, private_redis, service  # noqa: E402
from blocklist import cases, complaints, routing, tags  # noqa: E402
from blocklist.apikeys import ApiKey  # noqa: E402
from blocklist.complaints import Imported  # noqa: E402

MONTH_COMPLAINTS = 2_000_000
UPHELD_CASES = 300  # the month's exposure, through the agency's steps
REQUESTS = 200  # per measurement
BATCH = 500


def months() -> tuple[date, date]:
    """The first days of this month and of the one before."""
    first = datetime.now(timezone.utc).date().replace(day=1)
    return first, (first - timedelta(days=1)).replace(day=1)


def counters(store, first: date) -> None:
    """The month's counters as 2,000,000 complaints leave them (shares after the 12321 centre's
    July 2018 figures), and the daily counts of numbers marked and ring-once numbers."""
    rng = random.Random(7)
    weights = {tag.code: rng.random() for tag in tags.TAXONOMY}
    weights.update(loan=30.9, debt_collection=21.0, real_estate=14.0)
    whole = sum(weights.values())
    fields = {"n": MONTH_COMPLAINTS}
    fields.update({f"d{day:02d}": MONTH_COMPLAINTS // 31 for day in range(1, 32)})
    fields.update({f"t:{code}": int(MONTH_COMPLAINTS * weight / whole) for code, weight in weights.items()})
    for agency in routing.cached(store.config.routing_file).agencies:
        fields[f"received:{agency}"] = rng.randrange(1000, 50_000)
        fields[f"upheld:{agency}"] = rng.randrange(10, 1000)
    store.redis.hset(store.keys.complaint_month(first.isoformat()[:7]), mapping=fields)
    epoch_day = (first - date(1970, 1, 1)).days
    store.pipelined(lambda pipe: [pipe.hset(store.keys.daily_stats(bucket, epoch_day + day), mapping={
        "m": rng.randrange(50, 150), "r": rng.randrange(5, 20)})
        for day in range(31) for bucket in range(store.config.buckets)])


def file_complaints(store, count: int, at: float) -> float:
    """`count` complaints received at `at`, pipelined; seconds taken."""
    started = time.perf_counter()
    codes = [tag.code for tag in tags.TAXONOMY]
    for start in range(0, count, BATCH):
        complaints.file_imported(store, [
            Imported(f"bench:{n}", f"+86138{n % 1_000_000:08d}", codes[n % len(codes)], at, None, "010")
            for n in range(start, min(count, start + BATCH))])
    return time.perf_counter() - started


def uphold(store, count: int) -> None:
    """Uphold `count` cases the way an agency does (two steps each), naming ~100 companies."""
    key, found = ApiKey("bench", "admin"), 0
    for bucket in range(store.config.buckets):
        for agency in routing.cached(store.config.routing_file).agencies:
            for case_id in store.redis.zrange(store.keys.cases_by_status(bucket, agency, "received"), 0, 9):
                cases.transition(store, key, case_id, "verifying", "")
                cases.transition(store, key, case_id, "upheld", "", company=f"Company {found % 97}")
                found += 1
                if found >= count:
                    return


def timed(base: str, path: str, count: int) -> list[float]:
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    out = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        out.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, body[:200]
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 complaints stored; under a minute")
    args = parser.parse_args()
    stored = 20_000 if args.quick else 200_000
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    first, before = months()
    month, previous = first.isoformat()[:7], before.isoformat()[:7]
    with private_redis() as url:
        app, store, secret = bench_app(url)
        with service(url, CALLMARK_SECRET_KEY=secret, CALLMARK_SWEEP_INTERVAL="0",
                     CALLMARK_RATE_LIMIT_PUBLIC="100000000/minute") as base:
            counters(store, first)
            timed(base, f"/v1/public/reports/{month}", 20)  # warm-up: every worker
            empty = timed(base, f"/v1/public/reports/{month}", REQUESTS)
            seconds = file_complaints(store, stored, store.clock())
            uphold(store, UPHELD_CASES)
            used = store.redis.info("memory")["used_memory"]
            full = timed(base, f"/v1/public/reports/{month}", REQUESTS)
            counters(store, before)
            frozen = timed(base, f"/v1/public/reports/{previous}", REQUESTS)
            healthz = timed(base, "/healthz", REQUESTS)
    print(f"counters of {MONTH_COMPLAINTS:,} complaints; {stored:,} complaints filed in {seconds:.1f} s "
          f"({stored / seconds:,.0f}/s), {UPHELD_CASES} upheld cases; Redis used_memory {used / 2**20:.0f} MiB")
    print(f"current month, no complaints stored: p50 {pct(empty, 0.5):.1f} ms, p99 {pct(empty, 0.99):.1f} ms")
    print(f"current month, {stored:,} stored: p50 {pct(full, 0.5):.1f} ms, p99 {pct(full, 0.99):.1f} ms")
    print(f"past month, frozen: p50 {pct(frozen, 0.5):.1f} ms, p99 {pct(frozen, 0.99):.1f} ms")
    print(f"/healthz: p50 {pct(healthz, 0.5):.1f} ms, p99 {pct(healthz, 0.99):.1f} ms ({REQUESTS} requests each, "
          "one connection)")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"report_ms_p50={pct(full, 0.5):.1f} report_ms_p99={pct(full, 0.99):.1f} "
          f"frozen_ms_p50={pct(frozen, 0.5):.1f} healthz_ms_p50={pct(healthz, 0.5):.1f}")


if __name__ == "__main__":
    main()
