"""Public complaint figures: the counts per month the monthly report (blocklist/monthly.py) is
made of, so that it never scans a complaint.

Each month's hash counts complaints in total, per day and per tag, and cases received and
upheld per agency; beside them is what the exposure shows of each upheld case (the verified
company, the number that called, its categories, agency and date). A device counts once per
number per day (the day's set of keyed hashes of device and number, kept two days), so one
phone cannot make a figure. The hashes have no TTL: a month's figures outlive every retention
period, and once the month is over its report is frozen. Nothing here names a reporter or a
device. See docs/STORAGE.md.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from .keyed import keyed
from .store import Store

SEEN_SECONDS = 2 * 86400  # a day's set of (device, number) outlives the day


def month_of(at: float) -> str:
    """`YYYY-MM` (UTC) of a unix time."""
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m")


def queue_complained(store: Store, pipe, reporter: str, number: str, tag: str, at: float) -> None:
    """Queue on `pipe` the counting of a complaint received at `at`, unless its reporter (a
    device, or an imported row) complained of the number that day already."""
    day = int(at // 86400)
    seen = keyed(store.secret, "complaint-seen", f"{reporter}|{number}").hex()[:24]
    store.evalsha(pipe, store.script("blocklist", "complaint_count.lua"),
                  [store.keys.complaint_month(month_of(at)), store.keys.complaint_seen(day)],
                  [seen, datetime.fromtimestamp(at, tz=timezone.utc).strftime("d%d"), f"t:{tag}", SEEN_SECONDS])


def queue_case_step(store: Store, pipe, agency: str, status: str, at: float) -> None:
    """Queue the counting of a case that reached `status` at `at` (received: opened, or moved
    to the agency; upheld)."""
    pipe.hincrby(store.keys.complaint_month(month_of(at)), f"{status}:{agency}", 1)


def case_step(store: Store, agency: str, status: str, at: float) -> None:
    store.pipelined(lambda pipe: queue_case_step(store, pipe, agency, status, at))


def upheld(store: Store, case: dict) -> None:
    """Count an upheld case (`cases._summary` of it) for its agency and month, and keep what the
    exposure shows of it, in one round trip."""
    shown = {"company": case["verified_company"], "number": case["number"], "agency": case["agency"],
             "categories": [row["tag"] for row in case["categories"]], "upheld_at": case["upheld_at"]}
    at = datetime.fromisoformat(case["upheld_at"]).timestamp()
    store.pipelined(lambda pipe: [queue_case_step(store, pipe, case["agency"], "upheld", at),
                                  pipe.hset(store.keys.exposed(), case["case_id"],
                                            json.dumps(shown, ensure_ascii=False, separators=(",", ":")))])


def exposed(store: Store) -> list[dict]:
    """What the exposure shows of every upheld case."""
    return [json.loads(value) for value in store.redis.hvals(store.keys.exposed())]
