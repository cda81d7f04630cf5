"""Do-Not-Call benchmark (issue 12): a 1,000,000-number CSV scrub over HTTP against the same
scrub without HTTP, the gunicorn worker's peak memory during uploads of 100,000 and 1,000,000
lines, Redis bytes per registration, and registration (verification to registered) latency
over HTTP at a fixed rate.

    python bench/dnc_bench.py --quick     # under a minute: 100k registrations and lines
    python bench/dnc_bench.py             # full: 1M registrations, 1M-line uploads

It starts its own Redis 7 (redis-server from PATH; or REDIS_URL, which it FLUSHES) and
`python app.py` against it. Registrations for the scrub and memory figures are written
straight into their buckets (the placement and packing of blocklist/dnc.py, pipelined), not
through SMS; the latency figure goes the whole way over HTTP, reading codes from the
development SMS outbox.
Final line: scrub_numbers_per_s=<n> ratio_vs_direct=<r> peak_rss_mb=<m> bytes_per_registration=<b>
  registration_p99_ms=<p>
"""
from __future__ import annotations

import cProfile
import hashlib
import hmac
import http.client
import io
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sync.signing import iso  # noqa: E402
from bench.common import (PeakRss, bench_app, bench_arguments, machine, private_redis, service,  # noqa: E402
                          status_mb)
from bench.feed_bench import workers  # noqa: E402
from blocklist import apikeys, dnc  # noqa: E402
from blocklist.numbers import normalize  # noqa: E402
from blocklist.web.dnc_api import CSV_HEADER  # noqa: E402

ROUNDS = 3  # alternating rounds of the direct and the HTTP scrub; the best of each
REGISTERED_SHARE = 0.3  # of the scrubbed list: numbers in the registry
PIPELINE = 10_000  # commands per round trip when populating
ORGANIZATION = "bench-telemarketer"
# Area codes in service (NANP): the numbers are US numbers, as in the registry of issue 12.
AREA_CODES = [int(a) for a in (
    "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228 229 231 234 239 240 248 "
    "251 252 253 254 256 260 262 267 269 270 276 281 301 302 303 304 305 307 308 309 310 312 313 314 315 316 "
    "317 318 319 320 321 323 325 330 334 336 337 339 347 351 352 360 361 386 401 402 404 405 406 407 408 409 "
    "410 412 413 414 415 417 419 423 424 425 432 434 435 440 443 469 478 479 480 484 501 502 503 504 505 507 "
    "508 509 510 512 513 515 516 517 518 520 530 540 541 559 561 562 563 567 570 571 573 574 575 580 585 586 "
    "601 602 603 605 606 607 608 609 610 612 614 615 616 617 618 619 620 623 626 630 631 636 641 646 650 651 "
    "660 661 662 678 682 701 702 703 704 706 707 708 712 713 714 715 716 717 718 719 720 724 727 731 732 734 "
    "740 754 757 760 763 765 770 772 773 774 775 781 785 786 801 802 803 804 805 806 808 810 812 813 814 815 "
    "816 817 818 828 830 831 832 843 845 847 848 850 856 857 858 859 860 862 863 864 865 870 901 903 904 906 "
    "907 908 909 910 912 913 914 915 916 917 918 919 920 925 928 931 936 937 940 941 949 951 952 954 956 970 "
    "971 972 973 978 979 980 985 989").split()]


def us_numbers(count: int, seed: int) -> list[str]:
    """`count` distinct US numbers in E.164 (+1 NPA NXX XXXX, exchanges 200-999 but not N11)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        exchange = rng.randrange(200, 1000)
        if exchange % 100 == 11:
            continue
        seen.add(f"+1{rng.choice(AREA_CODES)}{exchange}{rng.randrange(10_000):04d}")
    return sorted(seen, key=lambda _: rng.random())


# --- populating the registry directly (dnc's placement and packing, pipelined) ---------------

def populate(store, numbers: list[str], device_copies: bool = False) -> None:
    """Registrations of `numbers` refusing every marketing call, written straight into their
    buckets as `dnc.register` writes them; with `device_copies`, also each number's
    device-side encrypted copy (one device per number, as phones register their own)."""
    now = dnc._minute(store.clock())
    zone = dnc._zone_index(store, "America/New_York")
    r = store.redis
    for start in range(0, len(numbers), PIPELINE):
        pipe = r.pipeline(transaction=False)
        for i, number in enumerate(numbers[start:start + PIPELINE], start=start):
            where = dnc.place(store, number)
            device_id = f"bench{i:09d}"
            record = dnc.Record(dnc.REFUSE_ALL_FLAG, "US", zone, now, now, dnc.device_tag(store, device_id))
            if device_copies:
                device_key = store.keys.dnc_device(device_id)
                field = f"r{where.name}"
                pipe.hset(device_key, field, dnc.seal(store, f"{device_key}:{field}", number))
            else:
                pipe.hset(store.keys.dnc_registrations(where.group, where.bucket), where.field, record.pack())
        pipe.execute()


def memory(store, count: int) -> dict:
    """Redis bytes per registration record, and per device-side encrypted copy, at `count`."""
    r = store.redis
    r.flushdb()
    pool = us_numbers(count, seed=11)
    dnc._zone_index(store, "America/New_York")  # the zones hash: a fixed cost, before the count
    base = r.info("memory")["used_memory"]
    populate(store, pool)
    after = r.info("memory")["used_memory"]
    keys = [k for k in r.scan_iter(match="*:dnc:r:*", count=10_000)]
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.object("encoding", key)
    encodings: dict[str, int] = {}
    for encoding in pipe.execute():
        encodings[encoding] = encodings.get(encoding, 0) + 1
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.hlen(key)
    largest = max(pipe.execute())
    populate(store, pool, device_copies=True)
    copies = r.info("memory")["used_memory"]
    return {"count": count, "record_bytes": (after - base) / count, "copy_bytes": (copies - after) / count,
            "buckets": len(keys), "encodings": encodings, "largest_bucket": largest}


# --- the scrub, directly and over HTTP ----------------------------------------------------------

def upload_body(registered: list[str], count: int, seed: int) -> bytes:
    """A CSV of `count` lines: REGISTERED_SHARE of them registered numbers, the rest not."""
    rng = random.Random(seed)
    inside = registered[:int(count * REGISTERED_SHARE)]
    outside = us_numbers(count - len(inside) + 1000, seed=seed + 1)
    taken = set(registered)
    outside = [n for n in outside if n not in taken][:count - len(inside)]
    lines = inside + outside
    rng.shuffle(lines)
    return ("\n".join(lines) + "\n").encode()


def render(rows) -> bytes:
    """The CSV answer the route sends for `rows` (for comparing the two paths' answers)."""
    out = io.StringIO()
    out.write(CSV_HEADER)
    for number, ok, reason in rows:
        out.write(f"{number},{'true' if ok else 'false'},{reason}\n")
    return out.getvalue().encode()


def direct_scrub(store, body: bytes, call_at: float) -> tuple[float, list]:
    """The baseline: the route's work without HTTP: lines decoded, then dnc.scrub (parse,
    keyed hash, lookups) over them, every answer consumed."""
    started = time.perf_counter()
    lines = (line.decode("utf-8", "replace") for line in body.splitlines())
    rows = list(dnc.scrub(store, ORGANIZATION, "loan", call_at, lines))
    return time.perf_counter() - started, rows


def http_scrub(base: str, token: str, body: bytes, call_at: float) -> tuple[float, str, int]:
    """Upload `body` as text/csv the way curl --data-binary @file does (Content-Length, sent in
    blocks) and read the whole streamed answer: (seconds, sha256 of the answer, lines)."""
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
    digest, lines = hashlib.sha256(), 0
    started = time.perf_counter()
    conn.request("POST", f"/v1/dnc/scrub?category=loan&call_at={iso(int(call_at))}", body=io.BytesIO(body),
                 headers={"Content-Type": "text/csv", "Content-Length": str(len(body)),
                          "Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"bench: scrub answered {response.status}: {response.read()[:300]!r}")
    while chunk := response.read(256 * 1024):
        digest.update(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, digest.hexdigest(), lines


def parse_costs(store, count: int = 20_000) -> None:
    """Per number: phonenumbers' parse + validate + format (blocklist.numbers.normalize), the
    scrub's E.164 fast path (dnc.fast_e164) and the keyed hash; fresh numbers each round
    (normalize keeps a cache)."""
    region, secret = store.config.default_region, store.secret
    best = {"normalize": float("inf"), "fast_e164": float("inf"), "hmac": float("inf")}
    for k in range(3):
        numbers = us_numbers(count, seed=1000 + k)
        for name, run in (("normalize", lambda n: normalize(n, region)), ("fast_e164", dnc.fast_e164),
                          ("hmac", lambda n: hmac.digest(secret, b"dnc:" + n.encode(), "sha256"))):
            started = time.perf_counter()
            for number in numbers:
                run(number)
            best[name] = min(best[name], (time.perf_counter() - started) / count * 1e6)
    print(f"per number ({count:,} fresh E.164 numbers, best of 3): phonenumbers (normalize) {best['normalize']:.1f} µs, "
          f"dnc.fast_e164 {best['fast_e164']:.1f} µs, keyed hash {best['hmac']:.1f} µs")


def profile_scrub(store, body: bytes, call_at: float, top: int = 12) -> None:
    """Where the direct scrub's time goes (cProfile, cumulative)."""
    profiler = cProfile.Profile()
    profiler.enable()
    direct_scrub(store, body, call_at)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    print("profile of the direct scrub (by own time):")
    print("\n".join("  " + line for line in text.splitlines()[6:] if line.strip()))


# --- registration over HTTP at a fixed rate --------------------------------------------------------

class Outbox:
    """Tails the development SMS outbox in a thread of its own: number -> the code last sent
    to it. Only lines written after it started count."""

    def __init__(self, path: str):
        self.path, self.codes = path, {}
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.arrived = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.001):
            if not os.path.exists(self.path):
                continue
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            if not end:
                continue
            self.offset += end
            with self.arrived:
                for line in data[:end].splitlines():
                    message = json.loads(line)
                    self.codes[message["to"]] = message["text"].split("code: ", 1)[1][:dnc.CODE_DIGITS]
                self.arrived.notify_all()

    def code(self, number: str, timeout: float = 10.0) -> str:
        with self.arrived:
            if not self.arrived.wait_for(lambda: number in self.codes, timeout):
                raise SystemExit(f"bench: no code for {number} in {self.path}")
            return self.codes.pop(number)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class Client:
    def __init__(self, base: str):
        parsed = urlparse(base)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def registration_latency(base: str, outbox: Outbox, rate: int, seconds: float, seed: int = 99) -> dict:
    """Open loop at `rate` registrations a second, each by a device of its own: POST
    /v1/dnc/verifications, the code read from the outbox, POST /v1/dnc/registrations. Latency:
    from when the registration was due to its 201, less the time spent reading the outbox
    (a person typing the code); also each request's own."""
    total = int(rate * seconds)
    client = Client(base)
    tokens = []
    for _ in range(total):
        status, reply = client.request("POST", "/v1/devices")
        assert status == 201, reply
        tokens.append(json.loads(reply)["token"])
    pool = us_numbers(total, seed=seed)
    lock = threading.Lock()
    index = [0]
    start = time.perf_counter() + 0.2
    flows: list[float] = []
    verifications: list[float] = []
    registrations: list[float] = []
    errors: list = []

    def run() -> None:
        client = Client(base)
        while True:
            with lock:
                i = index[0]
                index[0] += 1
            if i >= total:
                return
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            status, reply = client.request("POST", "/v1/dnc/verifications", {"number": pool[i]}, tokens[i])
            verified = time.perf_counter()
            if status != 202:
                errors.append((status, reply[:200]))
                continue
            code = outbox.code(pool[i])
            sent = time.perf_counter()
            status, reply = client.request("POST", "/v1/dnc/registrations", {
                "verification_id": json.loads(reply)["verification_id"], "code": code,
                "preferences": {"refuse": "all"}}, tokens[i])
            done = time.perf_counter()
            with lock:
                if status != 201:
                    errors.append((status, reply[:200]))
                verifications.append(verified - due)
                registrations.append(done - sent)
                flows.append((verified - due) + (done - sent))

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return 1000 * values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")

    return {"rate": rate, "count": total, "errors": len(errors), "first_error": errors[0] if errors else None,
            "p50_ms": pct(flows, 0.5), "p99_ms": pct(flows, 0.99),
            "verification_p99_ms": pct(verifications, 0.99), "registration_p99_ms": pct(registrations, 0.99)}


# --- main --------------------------------------------------------------------------------------------

PARTS = ("scrub", "registration", "memory")


def scrub_part(store, base: str, pids: list[int], sizes: tuple[int, int, int], rounds: int, profile: bool) -> dict:
    n_registered, n_small, n_large = sizes
    token = apikeys.create(store, ORGANIZATION, "scrub")
    registered = us_numbers(n_registered, seed=5)
    started = time.perf_counter()
    populate(store, registered)
    print(f"registry: {n_registered:,} registrations written in {time.perf_counter() - started:.1f} s")
    call_at = store.clock()
    small = upload_body(registered, n_small, seed=21)
    large = upload_body(registered, n_large, seed=22)
    idle = max(status_mb(pid, "VmHWM") for pid in pids)

    # Constant memory: the workers' peak during an upload of n_small lines, then of n_large.
    peaks = {}
    for size, body in ((n_small, small), (n_large, large)):
        with PeakRss(pids) as rss:
            http_scrub(base, token, body, call_at)
        peaks[size] = (max(rss.peak.values()), max(status_mb(pid, "VmHWM") for pid in pids))
    print(f"worker memory ({len(pids)} children of the launcher): idle VmHWM {idle:.1f} MB; "
          + "; ".join(f"during {size:,} lines peak VmRSS {rss:.1f} MB, then VmHWM {hwm:.1f} MB"
                      for size, (rss, hwm) in peaks.items()))

    # Alternating rounds, the best of each: the machine is shared.
    direct = over_http = float("inf")
    for _ in range(rounds):
        seconds_direct, rows = direct_scrub(store, large, call_at)
        direct = min(direct, seconds_direct)
        expected = hashlib.sha256(render(rows)).hexdigest()
        refused = sum(1 for row in rows if not row[1])
        del rows
        seconds_http, answer, lines = http_scrub(base, token, large, call_at)
        over_http = min(over_http, seconds_http)
        if answer != expected or lines != n_large + 1:
            raise SystemExit(f"bench: the HTTP answer differs from dnc.scrub's ({lines:,} lines)")
    print(f"scrub of {n_large:,} numbers ({refused:,} refused): direct {n_large / direct:,.0f} numbers/s "
          f"({direct:.1f} s), HTTP text/csv {n_large / over_http:,.0f} numbers/s ({over_http:.1f} s), "
          f"ratio {direct / over_http:.2f}; answers identical (best of {rounds} alternating rounds)")
    parse_costs(store)
    if profile:
        profile_scrub(store, large, call_at)
    return {"per_s": n_large / over_http, "ratio": direct / over_http, "peak": max(p[0] for p in peaks.values())}


def registration_part(base: str, data_dir: str, rate: int, seconds: float, rounds: int) -> dict:
    # Rounds on fresh devices and numbers, the best p99 kept: the host is shared.
    outbox = Outbox(os.path.join(data_dir, "sms-outbox.jsonl"))
    # A second at the rate first, not counted: each worker's first requests load phonenumbers'
    # metadata, time zones and the scripts, which a running service has done long before.
    warm = registration_latency(base, outbox, rate, 1.0, seed=98)
    print(f"registration warm-up (not counted), p50/p99 ms: {warm['p50_ms']:.1f}/{warm['p99_ms']:.1f}")
    tries = [registration_latency(base, outbox, rate, seconds, seed=99 + k) for k in range(rounds)]
    outbox.close()
    lat = min(tries, key=lambda t: (t["errors"], t["p99_ms"]))
    print("registration rounds, p50/p99 ms: " + ", ".join(f"{t['p50_ms']:.1f}/{t['p99_ms']:.1f}" for t in tries))
    print(f"registration over HTTP at {lat['rate']}/s for {seconds} s ({lat['count']:,}): "
          f"verification + registration p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
          f"(verification p99 {lat['verification_p99_ms']:.1f} ms, registration p99 "
          f"{lat['registration_p99_ms']:.1f} ms), errors {lat['errors']}"
          + (f", first {lat['first_error']}" if lat["errors"] else ""))
    return lat


def main() -> None:
    args, parts, rounds = bench_arguments(__doc__, PARTS, ROUNDS, quick="small sizes; under a minute",
                                          profile="print a cProfile of the direct scrub")
    sizes = (100_000, 20_000, 100_000) if args.quick else (1_000_000, 100_000, 1_000_000)
    n_memory = 100_000 if args.quick else 1_000_000
    rate, seconds = 200, (3 if args.quick else 10)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    data_dir = tempfile.mkdtemp(prefix="cm-dnc-bench-")
    unlimited = {f"CALLMARK_RATE_LIMIT_{name}": "100000000/minute" for name in (
        "REGISTRATION", "REGISTRATION_NETWORK", "DNC", "SCRUB", "VERIFICATIONS", "VERIFICATIONS_NETWORK",
        "VERIFICATIONS_NUMBER", "VERIFICATIONS_COUNTRY")}
    scrubbed, lat, mem = {}, {}, {}
    try:
        with private_redis() as url:
            app, store, secret = bench_app(url)
            if parts & {"scrub", "registration"}:
                with service(url, CALLMARK_SECRET_KEY=secret, CALLMARK_SWEEP_INTERVAL="0", CALLMARK_DATA_DIR=data_dir,
                             CALLMARK_SCRUB_DAILY_NUMBERS="1000000000", **unlimited) as base:
                    pids = workers()
                    if "scrub" in parts:
                        scrubbed = scrub_part(store, base, pids, sizes, rounds, args.profile)
                    if "registration" in parts:
                        lat = registration_part(base, data_dir, rate, seconds, rounds)
            if "memory" in parts:
                mem = memory(store, n_memory)
                print(f"memory at {mem['count']:,} registrations: {mem['record_bytes']:.1f} B/registration record "
                      f"in {mem['buckets']:,} buckets ({', '.join(f'{n:,} {e}' for e, n in mem['encodings'].items())}"
                      f"; largest {mem['largest_bucket']} fields); device-side encrypted copies "
                      f"{mem['copy_bytes']:.1f} B/registration (one device each)")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    nan = float("nan")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"scrub_numbers_per_s={scrubbed.get('per_s', nan):.0f} ratio_vs_direct={scrubbed.get('ratio', nan):.2f} "
          f"peak_rss_mb={scrubbed.get('peak', nan):.1f} bytes_per_registration={mem.get('record_bytes', nan):.1f} "
          f"registration_p99_ms={lat.get('p99_ms', nan):.1f}")


if __name__ == "__main__":
    main()
