"""Complaints benchmark (issue 13, "Scale"): complaint intake over HTTP against single reports
in the same run, the regulators' CSV export over HTTP against the same export without HTTP
(and the gunicorn workers' peak memory while it streams), and Redis bytes per complaint and
per case.

    python bench/complaints_bench.py --quick     # under a minute: 20k complaints
    python bench/complaints_bench.py             # full: 200k complaints, 3 alternating rounds

It starts its own Redis 7 (redis-server from PATH; or REDIS_URL, which it FLUSHES) and
`python app.py` against it. Intake goes the whole way over HTTP: 8 client threads, each with
its own device and keep-alive connection, a fresh number in every request. The complaints of
the export and memory figures are written straight into Redis: lua/complaint_file.lua and the
device's note (lua/device_field.lua), as blocklist/complaints.py `_file` runs them, pipelined,
with the records `complaints.file` makes (checked at the start against one filed through it);
they cast no vote. The memory part also files some through `complaints.file` itself, votes
and public counts included.
Final line: complaints_per_s=<n> reports_per_s=<n> intake_ratio=<r> export_rows_per_s=<n> export_ratio=<r>
  peak_rss_mb=<m> bytes_per_complaint=<b>
"""
from __future__ import annotations

import cProfile
import dataclasses
import hashlib
import io
import json
import os
import pstats
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sync.signing import iso  # noqa: E402
from bench.common import (PeakRss, bench_app, bench_arguments, machine, private_redis, service,  # noqa: E402
                          status_mb)
from bench.feed_bench import connect, workers  # noqa: E402
from bench.ingest import Client, _memory_of, numbers, register  # noqa: E402
from blocklist import apikeys, complaint_export, complaints, devices, routing  # noqa: E402
from blocklist.web.complaints_api import _period  # noqa: E402

ROUNDS = 3  # alternating rounds of each pair (complaints/reports, direct/HTTP export); the best of each
THREADS = 8  # intake client threads, each with its own device and keep-alive connection
PIPELINE = 500  # complaints per round trip when writing them straight into Redis
PER_CASE = 5  # complaints per number (so per case) in the export and memory fills
PER_DEVICE = 5  # complaints each device files in the export and memory fills
PARTS = ("intake", "export", "memory")
COMPLAINT_PARTS = ("complaint hashes", "received index", "device notes")  # the rest are per case
VOLUMES = (("12321's volume", 63_000 * 12 / 365.25), ("360's marking volume", 163_000))  # complaints a day
# What complaints are about: tags routed to seven agencies, companies as reporters type them, and
# contents with the commas and quotes a CSV writer must escape.
TAGS = ("loan", "real_estate", "fraud", "telemarketing", "education", "harassment", "insurance", "recruitment")
COMPANIES = ("Quick Loans Ltd", "安居房产", "", "Global Edu, Inc.", "平安保险代理")
CONTENTS = ("自称银行客服，推销低息贷款，要求提供验证码", "offered a loan at 3 % a month, \"no checks\", called twice",
            "recorded message about a flat for sale, hung up when asked who they were", "")
CALL_TYPES = ("live", "recorded", "robocall", "ring_once")
REGIONS = ("010", "021", "0755", "Guangdong", "")


def item(i: int, number: str, call_at: float, j: int) -> dict:
    """The i-th complaint of the fills, about the j-th number (which chooses the tag, so that the
    number's complaints go to one agency and share one case), as ComplaintSchema loads it."""
    body = {"number": number, "tag": TAGS[j % len(TAGS)], "company": COMPANIES[i % len(COMPANIES)],
            "content": CONTENTS[i % len(CONTENTS)], "call_at": call_at, "call_type": CALL_TYPES[i % len(CALL_TYPES)],
            "reporter_region": REGIONS[i % len(REGIONS)]}
    return {key: value for key, value in body.items() if value != ""}


# --- writing complaints straight into Redis (complaints._file's scripts, pipelined) ------------------

def populate(store, filers: list[str], items: list[dict], offset: int = 0) -> tuple[int, int]:
    """File `items` (validated complaints, E.164 numbers, none for a Do-Not-Call registration), the
    i-th by filers[(offset + i) // PER_DEVICE % len(filers)], as complaints.file writes them: the
    record it builds, lua/complaint_file.lua and the device's note, PIPELINE complaints a round
    trip. No vote and no public counts. Returns (complaints filed, cases opened)."""
    keys, table = store.keys, routing.cached(store.config.routing_file)
    note = store.script("blocklist", "device_field.lua")
    filed = opened = 0
    for start in range(0, len(items), PIPELINE):
        now = store.clock()

        def fill(pipe) -> None:
            for i, one in enumerate(items[start:start + PIPELINE], start=offset + start):
                device_id = filers[i // PER_DEVICE % len(filers)]
                number, tag = one["number"], one["tag"]
                agency, bucket = table.agency_for(tag).id, keys.bucket_of(number)
                complaint_id = complaints._id(store, bucket, device_id, None)
                record = {"number": number, "tag": tag, "company": one.get("company", ""),
                          "content": one.get("content", ""), "call_at": min(one.get("call_at", now), now),
                          "call_type": one.get("call_type", ""), "duration_seconds": one.get("duration_seconds", ""),
                          "reporter_region": one.get("reporter_region", ""), "received_at": now, "agency": agency,
                          "dnc_registered": 0, "dnc_violation": 0}
                fields = {complaints.FIELDS[name]: value for name, value in record.items() if value != ""}
                complaints._queue_file(store, pipe, complaint_id, bucket, agency, number, tag, one.get("company", ""),
                                       False, now, fields)
                store.evalsha(pipe, note, [keys.device(device_id), keys.device_complaints(device_id)],
                              [complaint_id, f"{now:.3f}"])

        replies = store.pipelined(fill)
        for reply, noted in zip(replies[0::2], replies[1::2]):
            if reply[0] != "filed" or not noted:
                raise SystemExit(f"bench: complaint_file.lua answered {reply}, the note {noted}")
            filed += 1
            opened += int(reply[3])
    return filed, opened


def register_devices(store, count: int) -> list[devices.Device]:
    """`count` devices registered as POST /v1/devices registers them (no address)."""
    return [devices.authenticate(store, token, cached=False)
            for token in (devices.register(store)[1] for _ in range(count))]


def device_ids(store, count: int) -> list[str]:
    """The ids of `count` devices registered as `register_devices` registers them."""
    return [devices.register(store)[0] for _ in range(count)]


def check_populate(store) -> None:
    """The records `populate` writes are those `complaints.file` writes for the same complaint:
    the complaint, its case and the device's note (ids, times and the number aside)."""
    r = store.redis
    first, second = register_devices(store, 2)
    pool = numbers(2, seed=90)
    call_at = float(int(store.clock()) - 3600)  # whole seconds, as an ISO time over HTTP gives
    answer = complaints.file(store, first, None, item(1, pool[0], call_at, 1))
    populate(store, [second.id], [item(1, pool[1], call_at, 1)])
    (written_id,) = r.hkeys(store.keys.device_complaints(second.id))
    bucket = store.keys.bucket_of(pool[1])
    filed = r.hgetall(store.keys.complaint(store.keys.bucket_of(pool[0]), answer["complaint_id"]))
    written = r.hgetall(store.keys.complaint(bucket, written_id))
    case_filed = r.hgetall(store.keys.case(answer["agency"], pool[0]))
    case_written = r.hgetall(store.keys.case(answer["agency"], pool[1]))

    def same(record: dict, aside: tuple) -> dict:
        return {field: value for field, value in record.items() if field not in aside}

    if (same(filed, ("n", "k", "r")) != same(written, ("n", "k", "r"))
            or same(case_filed, ("id", "n", "f", "l", "lc")) != same(case_written, ("id", "n", "f", "l", "lc"))
            or not r.zscore(store.keys.complaints_received(bucket), written_id)
            or r.hget(store.keys.case_ids(bucket), written["k"]) != f"{answer['agency']}|{pool[1]}"):
        raise SystemExit(f"bench: populate wrote {written} and {case_written}; complaints.file "
                         f"{filed} and {case_filed}")


def fill_items(count: int, per_case: int, seed: int) -> list[dict]:
    """`count` complaints about count // per_case numbers: the i-th is about number i mod that,
    so the first complaint of each number opens its case and the others join it."""
    pool = numbers(max(1, count // per_case), seed=seed)
    call_at = float(int(time.time()) - 3600)
    return [item(i, pool[i % len(pool)], call_at, i % len(pool)) for i in range(count)]


# --- intake over HTTP ------------------------------------------------------------------------

def bodies(kind: str, pool: list[str], call_at: str) -> list[bytes]:
    """One request body a number: a complaint (the 12321 form's fields) or a report of the same
    number, tag, company and text."""
    out = []
    for i, number in enumerate(pool):
        tag, company, text = TAGS[i % len(TAGS)], COMPANIES[0], CONTENTS[i % 2]
        if kind == "complaints":
            body = {"number": number, "tag": tag, "company": company, "content": text, "call_at": call_at,
                    "call_type": CALL_TYPES[i % len(CALL_TYPES)], "reporter_region": REGIONS[i % 4]}
        else:
            body = {"number": number, "tag": tag, "company": company, "note": text}
        out.append(json.dumps(body, ensure_ascii=False).encode())
    return out


def intake(base: str, path: str, work: list[bytes], tokens: list[str]) -> float:
    """POST every body of `work` to `path`, thread k sending every len(tokens)-th with tokens[k]
    over its own keep-alive connection; returns the seconds from first to last."""
    failures: list = []

    def run(k: int) -> None:
        client = Client(base)
        for body in work[k::len(tokens)]:
            status, reply = client.request("POST", path, body, tokens[k])
            if status != 201:
                failures.append((status, reply[:200]))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(tokens))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"bench: {len(failures)} of {len(work)} POST {path} failed, first: {failures[0]}")
    return elapsed


def intake_part(base: str, count: int, rounds: int) -> dict:
    pool = iter(numbers(count * 2 * rounds + 2 * THREADS * 50, seed=31))
    call_at = iso(time.time() - 3600)
    paths = {"complaints": "/v1/complaints", "reports": "/v1/reports"}
    # Not counted: each worker's first requests load the scripts, phonenumbers' metadata and the routing table.
    tokens = [token for _, token in register(base, THREADS)]
    for kind, path in paths.items():
        intake(base, path, bodies(kind, [next(pool) for _ in range(THREADS * 50)], call_at), tokens)
    best = {kind: 0.0 for kind in paths}
    tries: dict[str, list[float]] = {kind: [] for kind in paths}
    for _ in range(rounds):
        for kind, path in paths.items():  # fresh devices a round: none piles up thousands of votes
            tokens = [token for _, token in register(base, THREADS)]
            rate = count / intake(base, path, bodies(kind, [next(pool) for _ in range(count)], call_at), tokens)
            tries[kind].append(rate)
            best[kind] = max(best[kind], rate)
    print("intake rounds, requests/s: " + "; ".join(f"{kind} " + ", ".join(f"{rate:,.0f}" for rate in rates)
                                                  for kind, rates in tries.items()))
    print(f"intake over HTTP ({count:,} requests a round, {THREADS} threads with a device and keep-alive "
          f"connection each, a new number each): POST /v1/complaints {best['complaints']:,.0f}/s, "
          f"POST /v1/reports {best['reports']:,.0f}/s, ratio {best['complaints'] / best['reports']:.2f} "
          f"(best of {rounds} alternating rounds)")
    return best


def profile_intake(store, count: int = 500, top: int = 14) -> None:
    """Where a complaint's time goes beside a report's: each route through Flask's test client
    on the bench's own app (cProfile, by own time), `count` requests each."""
    from blocklist.web import create_app

    app = create_app(dataclasses.replace(store.config, log_level="WARNING"))  # no access log on stdout
    client = app.test_client()
    token = client.post("/v1/devices").get_json()["token"]
    pool = iter(numbers(2 * count, seed=77))
    for kind, path in (("complaints", "/v1/complaints"), ("reports", "/v1/reports")):
        work = bodies(kind, [next(pool) for _ in range(count)], iso(time.time() - 3600))
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for body in work:
            reply = client.post(path, data=body, content_type="application/json",
                                headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 201, reply.get_data()[:200]
        profiler.disable()
        per = (time.perf_counter() - started) / count * 1000
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        # Each Redis round trip is one sendall (a pipeline's commands go in one).
        trips = sum(calls for (_, _, name), (_, calls, *_) in stats.stats.items() if "sendall" in name) / count
        stats.sort_stats("tottime").print_stats(top)
        print(f"profile of POST {path} through the test client ({count}, {per:.2f} ms each with the profiler on, "
              f"{trips:.2f} Redis round trips each):")
        print("\n".join("  " + line for line in out.getvalue().splitlines()[6:] if line.strip()))


# --- the export, directly and over HTTP --------------------------------------------------------

def direct_export(store, start: float, end: float) -> tuple[float, str, int]:
    """The baseline: the route's work without HTTP, the whole answer joined: (seconds, sha256, lines)."""
    started = time.perf_counter()
    body = b"".join(complaint_export.export(store, None, start, end, "csv"))
    elapsed = time.perf_counter() - started
    return elapsed, hashlib.sha256(body).hexdigest(), body.count(b"\n")


def http_export(base: str, key: str, query: dict) -> tuple[float, str, int]:
    """GET the export and read the whole streamed answer: (seconds, sha256, lines)."""
    conn = connect(base)
    digest, lines = hashlib.sha256(), 0
    started = time.perf_counter()
    conn.request("GET", "/v1/regulator/complaints/export?" + urlencode(query),
                 headers={"Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"bench: the export answered {response.status}: {response.read()[:300]!r}")
    while chunk := response.read(1 << 16):
        digest.update(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, digest.hexdigest(), lines


def profile_export(store, start: float, end: float, top: int = 14) -> None:
    """Where the direct export's time goes (cProfile, by own time)."""
    profiler = cProfile.Profile()
    profiler.enable()
    direct_export(store, start, end)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    print("profile of the direct export (by own time):")
    print("\n".join("  " + line for line in out.getvalue().splitlines()[6:] if line.strip()))


def export_part(store, base: str, pids: list[int], count: int, rounds: int, profile: bool) -> dict:
    """The export of a tenth of `count` complaints over HTTP (the workers' peak memory), then of
    all of them, over HTTP and directly in alternating rounds."""
    key = apikeys.create(store, "bench-admin", "admin")
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    query = {"format": "csv", "from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    start, end = _period(store, query["from"], query["to"])  # the route's own bounds
    small = count // 10
    filers = device_ids(store, max(1, count // PER_DEVICE))
    items = fill_items(count, PER_CASE, seed=41)
    started = time.perf_counter()
    filed, opened = populate(store, filers, items[:small])
    idle = max(status_mb(pid) for pid in pids)
    with PeakRss(pids) as rss:
        _, _, lines = http_export(base, key, query)
    peak_small = max(rss.peak.values())
    if lines != small + 1:
        raise SystemExit(f"bench: the export had {lines - 1:,} rows for {small:,} complaints")
    more, opened_more = populate(store, filers, items[small:], offset=small)
    print(f"export data: {filed + more:,} complaints in {opened + opened_more:,} cases by {len(filers):,} devices, "
          f"written in {time.perf_counter() - started:.1f} s (with an export of the first {small:,})")
    direct = over_http = float("inf")
    peak = 0.0
    for _ in range(rounds):
        seconds, expected, lines = direct_export(store, start, end)
        direct = min(direct, seconds)
        if lines != count + 1:
            raise SystemExit(f"bench: the direct export had {lines - 1:,} rows for {count:,} complaints")
        with PeakRss(pids) as rss:
            seconds, answer, lines = http_export(base, key, query)
        peak = max(peak, *rss.peak.values())
        over_http = min(over_http, seconds)
        if answer != expected or lines != count + 1:
            raise SystemExit(f"bench: the HTTP export differs from complaint_export.export's ({lines - 1:,} rows)")
    print(f"export of {count:,} complaints as csv: direct {count / direct:,.0f} rows/s ({direct:.1f} s), HTTP "
          f"{count / over_http:,.0f} rows/s ({over_http:.1f} s), ratio {direct / over_http:.2f}; answers identical "
          f"(SHA-256; best of {rounds} alternating rounds)")
    print(f"worker memory ({len(pids)} children of the launcher): idle RSS {idle:.1f} MB (largest); peak during "
          f"the export of {small:,} {peak_small:.1f} MB, of {count:,} {peak:.1f} MB; then VmHWM "
          f"{max(status_mb(pid, 'VmHWM') for pid in pids):.1f} MB")
    if profile:
        profile_export(store, start, end)
    return {"per_s": count / over_http, "ratio": direct / over_http, "peak": peak, "idle": idle}


# --- memory --------------------------------------------------------------------------------------

def used(r) -> int:
    return r.info("memory")["used_memory"]


def family(key: str) -> str:
    """The SCAN pattern of a key's family: its name up to the hash tag (every complaint key has one)."""
    return key.split("{", 1)[0] + "{*"


def structures(store) -> dict[str, int]:
    """Bytes (MEMORY USAGE) of each complaint and case structure."""
    keys, number = store.keys, "+8613800138000"
    families = {"complaint hashes": keys.complaint(0, "x"), "received index": keys.complaints_received(0),
                "device notes": keys.device_complaints("x"), "case complaint sets": keys.case_complaints("x", number),
                "case hashes": keys.case("x", number), "case audit lists": keys.case_audit("x", number),
                "case ids": keys.case_ids(0), "cases by status": keys.cases_by_status(0, "x", "received")}
    return {name: _memory_of(store.redis, family(key)) for name, key in families.items()}


def filled_bytes(store, n: int, per_case: int, seed: int) -> float:
    """Redis bytes per complaint of `n` complaints, `per_case` a case, on a fresh database; the
    devices that file them (PER_DEVICE each) are registered before the count."""
    r = store.redis
    r.flushdb()
    devs = device_ids(store, max(1, n // PER_DEVICE))
    items = fill_items(n, per_case, seed)
    before = used(r)
    populate(store, devs, items)
    return (used(r) - before) / n


def memory(store, count: int, real: int) -> dict:
    """Redis bytes per complaint, `count` of them about count // PER_CASE numbers (cases shared),
    and from a second fill of one complaint a case, a complaint alone and a case; then `real` complaints through
    complaints.file, votes and public counts included."""
    r = store.redis
    shared = filled_bytes(store, count, PER_CASE, seed=51)
    parts = structures(store)
    own = filled_bytes(store, count // PER_CASE, 1, seed=52)
    case = (own - shared) * PER_CASE / (PER_CASE - 1)
    alone = shared - case / PER_CASE

    r.flushdb()
    devs = register_devices(store, real // PER_DEVICE)
    items = fill_items(real, PER_CASE, seed=61)
    before = used(r)
    started = time.perf_counter()

    def run(k: int) -> None:
        for i in range(k, real, THREADS):
            complaints.file(store, devs[i // PER_DEVICE], None, items[i])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = real / (time.perf_counter() - started)
    total = (used(r) - before) / real
    return {"count": count, "per_complaint": shared, "alone": alone, "case": case, "parts": parts,
            "real": real, "real_bytes": total, "real_rate": rate}


def sizing(store, alone: float, case: float) -> None:
    """Complaints kept for the retention at two volumes: bytes, with a case for every PER_CASE."""
    days = store.config.complaint_retention_days
    for name, per_day in VOLUMES:
        kept = per_day * days
        cases = kept / PER_CASE
        data = kept * alone + cases * case
        print(f"sizing at {name} ({per_day:,.0f} a day, {days:,} days): {kept / 1e6:,.1f} M complaints "
              f"{kept * alone / 1e9:,.1f} GB + {cases / 1e6:,.1f} M cases {cases * case / 1e9:,.1f} GB = "
              f"{data / 1e9:,.1f} GB")


# --- main --------------------------------------------------------------------------------------------

def main() -> None:
    args, parts, rounds = bench_arguments(__doc__, PARTS, ROUNDS, quick="small sizes, one round; under a minute",
                                          profile="print cProfiles of the intake routes and the export")
    n_intake, n_export = (1_000, 20_000) if args.quick else (4_000, 200_000)
    n_memory, n_real = (20_000, 2_000) if args.quick else (200_000, 10_000)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    # Eight devices from one address send every complaint and report, and many register: limits
    # above what the benchmark sends keep the limiter counting each request without refusing any.
    # Complaints and reports share the `reports` limit.
    unlimited = {f"CALLMARK_RATE_LIMIT_{name}": "100000000/minute"
                 for name in ("REPORTS", "REGISTRATION", "REGISTRATION_NETWORK")}
    took, exported, mem = {}, {}, {}
    with private_redis() as url:
        app, store, secret = bench_app(url)
        if "export" in parts:
            check_populate(store)
            store.redis.flushdb()
        if parts & {"intake", "export"}:
            # No scheduler: a publish or sweep would compete with what is measured.
            with service(url, CALLMARK_SECRET_KEY=secret, CALLMARK_SWEEP_INTERVAL="0", CALLMARK_PUBLISH_INTERVAL="0",
                         **unlimited) as base:
                pids = workers()
                if "export" in parts:  # first: the intake adds complaints of its own
                    exported = export_part(store, base, pids, n_export, rounds, args.profile)
                if "intake" in parts:
                    took = intake_part(base, n_intake, rounds)
            if "intake" in parts and args.profile:
                profile_intake(store)
        if "memory" in parts:
            mem = memory(store, n_memory, n_real)
            n, cases = mem["count"], mem["count"] // PER_CASE
            print(f"memory at {n:,} complaints, {PER_CASE} a case: {mem['per_complaint']:.1f} B/complaint with its "
                  f"share of the case; a complaint alone {mem['alone']:.1f} B, a case {mem['case']:.1f} B (from a "
                  f"second fill of one complaint a case)")
            print("  by structure (MEMORY USAGE), per complaint: " + ", ".join(
                f"{name} {mem['parts'][name] / n:.1f}" for name in COMPLAINT_PARTS) + "; per case: " + ", ".join(
                f"{name} {size / cases:.1f}" for name, size in mem["parts"].items() if name not in COMPLAINT_PARTS))
            print(f"through complaints.file ({mem['real']:,}, {PER_CASE} a case, {mem['real_rate']:,.0f}/s from "
                  f"{THREADS} threads): {mem['real_bytes']:.1f} B/complaint, its vote and the public counts included")
            sizing(store, mem["alone"], mem["case"])
    nan = float("nan")
    ratio = took["complaints"] / took["reports"] if took else nan
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"complaints_per_s={took.get('complaints', nan):.0f} reports_per_s={took.get('reports', nan):.0f} "
          f"intake_ratio={ratio:.2f} export_rows_per_s={exported.get('per_s', nan):.0f} "
          f"export_ratio={exported.get('ratio', nan):.2f} peak_rss_mb={exported.get('peak', nan):.1f} "
          f"bytes_per_complaint={mem.get('per_complaint', nan):.1f}")


if __name__ == "__main__":
    main()
