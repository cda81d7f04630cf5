"""The public monthly report (`GET /v1/public/reports/<YYYY-MM>`, the page `/reports/<YYYY-MM>`):
the month's "盘点" as the 12321 centre publishes it — complaints in total and per day, the
category shares, numbers newly marked and ring-once numbers detected, cases received and upheld
per agency, the exposure of the month and the Do-Not-Call figures.

It is made from counters only (blocklist/complaint_stats.py, the report statistics'
daily counts, blocklist/dnc_stats.py), never by reading complaints. A month that is over is
frozen: computed once and kept for good, so it never changes (its ETag neither) and outlives
every retention period. Every count under SUPPRESS_BELOW is withheld; public outputs never hold
complaint content or reporter data.
"""
from __future__ import annotations

import csv
import io
import json
from calendar import monthrange
from datetime import date, datetime, timedelta, timezone
from typing import Any

from . import cases, dnc_stats, routing, tags
from .dnc_stats import SUPPRESS_BELOW, SUPPRESSED_TEXT, month_start, share, suppress
from .errors import NotFound
from .store import Store

EPOCH = date(1970, 1, 1)


def _detected(store: Store, first: date, last: date) -> tuple[int, int]:
    """Numbers newly marked and ring-once numbers detected over the days: the report statistics'
    daily counts, summed in each bucket's slot (one script per bucket, not one read per day)."""
    days = [(first - EPOCH).days + i for i in range((last - first).days + 1)]
    script = store.script("blocklist", "sum_fields.lua")
    sums = store.pipelined(lambda pipe: [
        store.evalsha(pipe, script, [store.keys.daily_stats(bucket, day) for day in days], ["m", "r"])
        for bucket in range(store.config.buckets)])
    return sum(int(m) for m, _ in sums), sum(int(r) for _, r in sums)


def compute(store: Store, first: date) -> dict[str, Any]:
    """The month's report from its counters: no complaint is read. Every count under
    SUPPRESS_BELOW is null, and a share is given only where its count and its whole are."""
    last = first.replace(day=monthrange(first.year, first.month)[1])
    month = first.isoformat()[:7]
    counts = {field: int(value) for field, value in store.redis.hgetall(store.keys.complaint_month(month)).items()}
    total = suppress(counts.get("n", 0))
    categories = sorted(((tag, counts.get(f"t:{tag.code}", 0)) for tag in tags.TAXONOMY), key=lambda pair: -pair[1])
    table = routing.cached(store.config.routing_file)
    marked, ring_once = _detected(store, first, last)
    exposed = cases.exposure(store, month)
    return {
        "month": month,
        "suppressed_below": SUPPRESS_BELOW,
        "complaints": total,
        "complaints_per_day": [{"date": (first + timedelta(days=i)).isoformat(),
                                "complaints": suppress(counts.get(f"d{i + 1:02d}", 0))}
                               for i in range((last - first).days + 1)],
        "category_shares": [{"tag": tag.code, "name_en": tag.name_en, "name_zh": tag.name_zh,
                             "complaints": suppress(count), "share": share(suppress(count), total)}
                            for tag, count in categories if count],
        "numbers_newly_marked": suppress(marked),
        "ring_once_detected": suppress(ring_once),
        "cases": [{"agency": agency.id, "name_zh": agency.name_zh, "name_en": agency.name_en,
                   "received": suppress(counts.get(f"received:{agency.id}", 0)),
                   "upheld": suppress(counts.get(f"upheld:{agency.id}", 0))} for agency in table.agencies.values()],
        "exposure": exposed,  # the cases upheld in the month
        "do_not_call": dnc_stats.public_summary(store, first),
    }


def report(store: Store, month: str) -> tuple[dict[str, Any], bool]:
    """The public report of `month` and whether it is frozen: a month that is over is computed
    once, the first time it is asked for (or by the scheduler), and kept for good, so that
    it never changes and outlives every retention period. NotFound for a month not begun."""
    first = month_start(month)
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    if first > today:
        raise NotFound(f"the month {month} has not begun")
    if (first.year, first.month) == (today.year, today.month):
        return compute(store, first), False
    key = store.keys.complaint_report(month)
    frozen = store.redis.get(key)
    if frozen is None:
        store.redis.set(key, json.dumps(compute(store, first), ensure_ascii=False, separators=(",", ":")), nx=True)
        frozen = store.redis.get(key)  # the first writer's, should two freeze it at once
    return json.loads(frozen), True


def freeze_last_month(store: Store) -> None:
    """Freeze the report of the month before this one, if no one has asked for it yet (the
    scheduler's sweep does): its daily counts are kept STATS_DAYS only."""
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).isoformat()[:7]
    if not store.redis.exists(store.keys.complaint_report(last_month)):
        report(store, last_month)


def report_csv(shown: dict[str, Any]) -> str:
    """The report as CSV rows `section,item,count,share` (suppressed counts as <10)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "item", "count", "share"])

    def row(section: str, item: str, count: int | None, share: float | None = None) -> None:
        writer.writerow([section, item, SUPPRESSED_TEXT if count is None else count, "" if share is None else share])

    row("complaints", shown["month"], shown["complaints"])
    for day in shown["complaints_per_day"]:
        row("day", day["date"], day["complaints"])
    for category in shown["category_shares"]:
        row("category", category["tag"], category["complaints"], category["share"])
    row("numbers_newly_marked", shown["month"], shown["numbers_newly_marked"])
    row("ring_once_detected", shown["month"], shown["ring_once_detected"])
    for case in shown["cases"]:
        row("cases_received", case["agency"], case["received"])
        row("cases_upheld", case["agency"], case["upheld"])
    for entry in shown["exposure"]:
        row("exposure", entry["company"], entry["upheld_cases"])
    dnc = shown["do_not_call"]
    row("dnc_registrations", shown["month"], dnc["registrations"])
    return out.getvalue()
