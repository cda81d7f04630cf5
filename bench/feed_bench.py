"""Vendor feed benchmark: the NDJSON export of every number over HTTP (rows/s, and the peak
resident memory of the gunicorn workers while it runs), plain and gzip, and paging through
the whole change log with limit 1000 (changes/s).

    python bench/feed_bench.py --quick     # 50k numbers, under a minute
    python bench/feed_bench.py             # full: 1M numbers

It starts its own Redis 7 (redis-server from PATH; or REDIS_URL, which it FLUSHES), loads the
numbers directly through the storage layer (pipelined by 500), then starts `python app.py`
against it with the same secret, so an API key created here works there.
Final line: export_rows_per_s=<n> export_peak_rss_mb=<m> feed_changes_per_s=<f>
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import zlib
from urllib.parse import urlencode, urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import PeakRss, bench_app, machine, private_redis, service, status_mb  # noqa: E402
from blocklist import apikeys, feed  # noqa: E402
from blocklist.reputation import Vote, cast_votes  # noqa: E402

BATCH = 500  # votes per pipelined round trip while loading
PAGE = 1000  # the feed's largest page
TAGS = ("loan", "real_estate", "fraud", "debt_collection", "telemarketing", "ring_once", "delivery", "safe")


def load(store, count: int) -> int:
    """`count` distinct numbers, one report each from a distinct reporter; every 10th is blocked.

    Returns how many change-log entries that made."""
    now = store.clock()
    votes: list[Vote] = []
    for i in range(count):
        number = f"+86{138 + i % 8}{i:08d}"
        votes.append(Vote(number=number, tag=TAGS[i % len(TAGS)], voter=f"{i:08d}"[-8:], at=now))
        if i % 10 == 0:  # two more reporters: blocked, with a second change-log entry
            votes += [Vote(number=number, tag="loan", voter=f"x{i % 10_000_000:07d}", at=now),
                      Vote(number=number, tag="loan", voter=f"y{i % 10_000_000:07d}", at=now)]
        if len(votes) >= BATCH:
            cast_votes(store, votes)
            votes = []
    if votes:
        cast_votes(store, votes)
    return sum(store.redis.xlen(store.keys.changes(b)) for b in range(store.config.buckets))


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def workers() -> list[int]:
    """The gunicorn workers: children of the `python app.py` this benchmark started."""
    server = [pid for pid in _children(os.getpid()) if "app.py" in _cmdline(pid)]
    assert len(server) == 1, f"expected one app.py child, found {server}"
    # The service answers as soon as its first worker is up; wait for the others to fork.
    pids, stable_since = _children(server[0]), time.monotonic()
    while time.monotonic() - stable_since < 2.0:
        time.sleep(0.2)
        now = _children(server[0])
        if now != pids:
            pids, stable_since = now, time.monotonic()
    return pids


def connect(base: str) -> http.client.HTTPConnection:
    parsed = urlparse(base)
    return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)


def export(base: str, key: str, gzip: bool) -> tuple[int, float, int, dict]:
    """Stream the export; return (rows, seconds, bytes on the wire, the final cursor line)."""
    conn = connect(base)
    headers = {"Authorization": f"Bearer {key}"}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    started = time.perf_counter()
    conn.request("GET", "/v1/feed/export", headers=headers)
    response = conn.getresponse()
    assert response.status == 200, response.read()[:300]
    assert (response.getheader("Content-Encoding") == "gzip") == gzip
    decoder = zlib.decompressobj(31) if gzip else None
    lines, wire, tail = 0, 0, b""
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        wire += len(chunk)
        data = decoder.decompress(chunk) if decoder else chunk
        lines += data.count(b"\n")
        tail = (tail + data)[-4096:]
    if decoder:
        data = decoder.flush()
        lines += data.count(b"\n")
        tail = (tail + data)[-4096:]
    elapsed = time.perf_counter() - started
    last = json.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    assert set(last) == {"next_cursor"}, last
    conn.close()
    return lines - 1, elapsed, wire, last


def page_through(base: str, key: str) -> tuple[int, float, int]:
    """Read the whole change log with limit 1000; return (changes, seconds, pages)."""
    conn = connect(base)
    headers = {"Authorization": f"Bearer {key}"}
    cursor, total, pages = None, 0, 0
    started = time.perf_counter()
    while True:
        query = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        conn.request("GET", "/v1/feed?" + urlencode(query), headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body[:300]
        page = json.loads(body)
        pages += 1
        cursor = page["next_cursor"]
        if not page["changes"]:
            break
        total += len(page["changes"])
    return total, time.perf_counter() - started, pages


def direct_baselines(store, count: int) -> tuple[float, float]:
    """The same export and paging through the domain code, no HTTP: (rows/s, changes/s)."""
    started = time.perf_counter()
    lines = sum(chunk.count(b"\n") for chunk in feed.export(store))
    export_rate = (lines - 1) / (time.perf_counter() - started)
    assert lines - 1 == count
    cursor, total = None, 0
    started = time.perf_counter()
    while True:
        page = feed.page(store, cursor, PAGE)
        cursor = page["next_cursor"]
        if not page["changes"]:
            break
        total += len(page["changes"])
    return export_rate, total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50k numbers; under a minute")
    args = parser.parse_args()
    count = 50_000 if args.quick else 1_000_000
    print(f"machine: {machine()}")
    with private_redis() as url:
        app, store, secret = bench_app(url)
        started = time.perf_counter()
        changes = load(store, count)
        print(f"loaded {count:,} numbers ({changes:,} change-log entries) in {time.perf_counter() - started:.1f} s")
        key = apikeys.create(store, "bench", "feed")
        direct_export, direct_feed = direct_baselines(store, count)
        print(f"baseline, no HTTP (same run): export {direct_export:,.0f} rows/s, feed {direct_feed:,.0f} changes/s")
        # No scheduler (a publish of a million numbers would compete with the export), and a feed
        # limit out of the way: this measures the service, not the limiter.
        with service(url, CALLMARK_SECRET_KEY=secret, CALLMARK_SWEEP_INTERVAL="0", CALLMARK_PUBLISH_INTERVAL="0",
                     CALLMARK_RATE_LIMIT_FEED="100000/second") as base:
            pids = workers()
            idle = max(status_mb(pid) for pid in pids)
            print(f"service: {len(pids)} gunicorn workers, largest idle RSS {idle:.1f} MB")
            results = {}
            for gzip in (False, True):
                with PeakRss(pids) as rss:
                    rows, seconds, wire, _ = export(base, key, gzip)
                peak = max(rss.peak.values())
                assert rows == count, f"the export had {rows} rows for {count} numbers"
                results[gzip] = (rows / seconds, peak)
                print(f"export {'gzip ' if gzip else 'plain'}: {rows:,} rows in {seconds:.1f} s = "
                      f"{rows / seconds:,.0f} rows/s, {wire / 1e6:.1f} MB on the wire, "
                      f"peak worker RSS {peak:.1f} MB (idle {idle:.1f} MB)")
            total, seconds, pages = page_through(base, key)
            assert total == changes, f"the feed had {total} changes, the log {changes}"
            feed_rate = total / seconds
            print(f"feed: {total:,} changes in {pages:,} pages of {PAGE} in {seconds:.1f} s = {feed_rate:,.0f} changes/s")
    rows_per_s, peak = results[False]
    print(f"ratio to the no-HTTP baseline: export {rows_per_s / direct_export:.2f}, feed {feed_rate / direct_feed:.2f}")
    print(f"export_rows_per_s={rows_per_s:.0f} export_peak_rss_mb={max(peak, results[True][1]):.1f} "
          f"feed_changes_per_s={feed_rate:.0f}")


if __name__ == "__main__":
    main()
