"""Cases: the complaints about one number at one agency, and what the agency did about them.

A case opens with its first complaint (blocklist/complaints.py) as `received`; the agency moves
it along received -> verifying -> upheld | rejected, or transfers it to another agency, where
it is `received` again. A new complaint reopens a rejected case; an upheld case stays upheld
(its later complaints still count). Upholding names the company the agency verified, which
may differ from what reporters typed: exposure (`exposure`) shows that name only, and only
for upheld cases, never the crowd's claims.

Each step is one script on the number's bucket slot (lua/case_step.lua) with its audit entry.
A case's keys are named by its agency and number (docs/STORAGE.md); its id, `<bucket>-<16 hex>`,
says where to find it. Listings merge the buckets' per-agency, per-status indexes, newest
activity first, with a cursor of the last (activity, id) shown.
"""
from __future__ import annotations

import base64
import heapq
import json
import math
import re
from datetime import date, datetime, timezone
from itertools import islice
from typing import Any

from sync.signing import iso

from . import complaint_stats, complaints, reputation, routing
from .apikeys import ApiKey
from .complaints import CASE_AUDIT_KEEP, STATUSES
from .errors import Conflict, NotFound, ValidationFailed
from .store import Store

CASE_ID = re.compile(r"^(0|[1-9][0-9]{0,4})-[0-9a-f]{16}$")
STEPS = ("verifying", "upheld", "rejected", "transferred")  # where a transition may ask to go
PAGE = 50  # cases per page by default
_TIES = 20  # room, in each index read, for cases whose last activity shares the cursor's millisecond
CASE_COMPLAINTS = 100  # complaints a case shows, newest first
CASE_AUDIT_SHOWN = 100


def _bucket(store: Store, case_id: str) -> int:
    match = CASE_ID.fullmatch(case_id)
    if not match or int(match.group(1)) >= store.config.buckets:
        raise NotFound(f"no case {case_id!r}")
    return int(match.group(1))


def _where(store: Store, case_id: str) -> tuple[int, str, str]:
    """(bucket, agency, number) of a case; NotFound when there is none."""
    bucket = _bucket(store, case_id)
    where = store.redis.hget(store.keys.case_ids(bucket), case_id)
    if where is None:
        raise NotFound(f"no case {case_id!r}")
    agency, _, number = where.partition("|")
    return bucket, agency, number


def _visible(key: ApiKey, agency: str, case_id: str) -> None:
    """A regulator key sees its agency's cases only; another agency's answers as none at all."""
    if key.scope != "admin" and key.agency != agency:
        raise NotFound(f"no case {case_id!r}")


def _summary(record: dict[str, str]) -> dict[str, Any]:
    companies = sorted(((field[3:], int(count)) for field, count in record.items() if field.startswith("co:")),
                       key=lambda pair: (-pair[1], pair[0]))
    categories = sorted(((field[2:], int(count)) for field, count in record.items() if field.startswith("t:")),
                        key=lambda pair: (-pair[1], pair[0]))
    return {
        "case_id": record["id"], "number": record["n"], "agency": record["a"], "status": record["s"],
        "complaints": int(record.get("c", 0)),
        "companies": [{"company": name, "complaints": count} for name, count in companies],
        "categories": [{"tag": tag, "complaints": count} for tag, count in categories],
        "first_complaint_at": iso(float(record["f"])), "last_complaint_at": iso(float(record.get("lc", record["f"]))),
        "last_activity_at": iso(float(record["l"])),
        "dnc_violations": int(record.get("v", 0)),
        "verified_company": record.get("vc"), "upheld_at": iso(float(record["u"])) if record.get("u") else None,
    }


def read(store: Store, key: ApiKey, case_id: str) -> dict[str, Any]:
    """A case with its newest complaints (reporters withheld: region, and a contact they gave),
    its audit trail and the crowd's verdict on its number."""
    _, agency, _ = _where(store, case_id)
    _visible(key, agency, case_id)
    return _read(store, case_id)


def _read(store: Store, case_id: str) -> dict[str, Any]:
    _, agency, number = _where(store, case_id)
    keys = store.keys
    record, newest, audit = store.pipelined(lambda pipe: [
        pipe.hgetall(keys.case(agency, number)),
        pipe.zrevrange(keys.case_complaints(agency, number), 0, CASE_COMPLAINTS - 1),
        pipe.lrange(keys.case_audit(agency, number), -CASE_AUDIT_SHOWN, -1)])
    if record.get("id") != case_id:
        raise NotFound(f"no case {case_id!r}")
    shown = [complaints.shown(store, cid, found, contact=True) for cid, found in complaints.read_many(store, newest)]
    verdict = reputation.lookup(store, number)
    return {**_summary(record), "crowd": {key_: verdict.get(key_) for key_ in ("verdict", "label", "reporters")},
            "complaints_shown": shown,
            "audit": [{**entry, "at": iso(float(entry["at"]))} for entry in map(json.loads, reversed(audit))]}


def transition(store: Store, key: ApiKey, case_id: str, to: str, note: str, company: str | None = None,
               agency: str | None = None) -> dict[str, Any]:
    """Move a case one step (409 when the step is not allowed from where it is): upheld needs
    the verified company, transferred the agency it goes to."""
    bucket, here, number = _where(store, case_id)
    _visible(key, here, case_id)
    if to not in STEPS:
        raise ValidationFailed(f"to is one of {', '.join(STEPS)}")
    table = routing.cached(store.config.routing_file)
    if to == "upheld" and not company:
        raise ValidationFailed("upholding a case needs `company`: the name the agency verified")
    if to == "transferred":
        if agency not in table.agencies:
            raise ValidationFailed(f"a transfer names the agency it goes to, one of: {', '.join(table.agencies)}")
        if agency == here:
            raise ValidationFailed(f"the case is at {here} already")
    elif agency is not None:
        raise ValidationFailed("only a transfer names an agency")
    keys, now = store.keys, store.clock()
    script_keys = [keys.case(here, number), keys.case_complaints(here, number), keys.case_audit(here, number),
                   keys.case_ids(bucket), *(keys.cases_by_status(bucket, here, status) for status in STATUSES)]
    if to == "transferred":
        script_keys += [keys.case(agency, number), keys.case_complaints(agency, number),
                        keys.case_audit(agency, number),
                        *(keys.cases_by_status(bucket, agency, status) for status in STATUSES)]
    reply = store.script("blocklist", "case_step.lua")(keys=script_keys, args=[
        case_id, to, note, key.name, f"{now:.3f}", company or "", agency or "", CASE_AUDIT_KEEP])
    outcome = reply[0]
    if outcome == "absent":
        raise Conflict(f"case {case_id!r} moved while this step was asked for: read it again")
    if outcome == "illegal":
        allowed = {"received": "verifying, rejected or transferred", "verifying": "upheld, rejected or transferred"}
        raise Conflict(f"a {reply[1]} case cannot go to {to}"
                       + (f": from {reply[1]} it goes to {allowed[reply[1]]}" if reply[1] in allowed
                          else f": a {reply[1]} case takes no step (a new complaint reopens a rejected one)"),
                       {"status": reply[1]})
    if outcome == "occupied":
        raise Conflict(f"{agency} has a case of {number} already: transfer refused")
    shown = _read(store, case_id)  # as it is now: a transfer's answer too, though the case left the key's agency
    if to == "upheld":
        complaint_stats.upheld(store, shown)
    elif to == "transferred":
        complaint_stats.case_step(store, agency, "received", now)
    return shown


def _cursor(text: str | None) -> tuple[float, str] | None:
    if not text:
        return None
    try:
        at, _, case_id = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().partition(" ")
        if CASE_ID.fullmatch(case_id) and math.isfinite(float(at)):
            return float(at), case_id
    except (ValueError, UnicodeDecodeError):
        pass
    raise ValidationFailed("cursor is not one this service gave", {"cursor": text})


def _day_start(raw: str | None, end: bool) -> float | None:
    """Unix seconds at the start of a YYYY-MM-DD day (UTC), or of the day after it (`end`)."""
    if raw is None:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("from and to are dates: YYYY-MM-DD", {"date": raw}) from None
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return start + 86400 if end else start


def listing(store: Store, key: ApiKey, status: str | None = None, raw_from: str | None = None,
            raw_to: str | None = None, cursor: str | None = None, limit: int = PAGE) -> dict[str, Any]:
    """The cases a key may see, newest activity first; `from`/`to` bound their last activity
    (YYYY-MM-DD, UTC, both included). `next_cursor` continues after the last one shown."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(STATUSES)}")
    agencies = [key.agency] if key.scope != "admin" else list(routing.cached(store.config.routing_file).agencies)
    statuses = [status] if status else list(STATUSES)
    low, high = _day_start(raw_from, False), _day_start(raw_to, True)
    after = _cursor(cursor)
    top = str(after[0]) if after else f"({high}" if high is not None else "+inf"
    sets = [store.keys.cases_by_status(bucket, agency, one) for bucket in range(store.config.buckets)
            for agency in agencies for one in statuses]
    # Each set's newest, at or under the cursor's time: ties with the cursor's time come in
    # descending id order like everything else, so those up to the cursor's own are skipped.
    pages = store.pipelined(lambda pipe: [
        pipe.zrevrangebyscore(name, top, low if low is not None else "-inf", start=0, num=limit + 1 + _TIES,
                              withscores=True) for name in sets])
    newest = heapq.merge(*([(at, case_id) for case_id, at in page] for page in pages), reverse=True)
    chosen = list(islice(((at, case_id) for at, case_id in newest if after is None or (at, case_id) < after),
                         limit + 1))
    shown, more = chosen[:limit], len(chosen) > limit
    records = _records(store, [case_id for _, case_id in shown])
    next_cursor = None
    if more:
        at, case_id = shown[-1]
        next_cursor = base64.urlsafe_b64encode(f"{at!r} {case_id}".encode()).decode().rstrip("=")
    return {"cases": [_summary(record) for record in records if record], "next_cursor": next_cursor}



def _records(store: Store, case_ids: list[str]) -> list[dict[str, str]]:
    """The records of the cases of `case_ids` that exist, in order; two round trips."""
    located = [(case_id, _bucket(store, case_id)) for case_id in case_ids]
    wheres = store.pipelined(lambda pipe: [pipe.hget(store.keys.case_ids(b), case_id) for case_id, b in located]) \
        if located else []
    found = [where.partition("|")[::2] for where in wheres if where]
    return store.pipelined(lambda pipe: [pipe.hgetall(store.keys.case(agency, number)) for agency, number in found]) \
        if found else []


def exposure(store: Store, month: str | None = None) -> list[dict[str, Any]]:
    """The upheld cases (of `month`, YYYY-MM, when given), by the company the agency verified:
    its numbers, categories, agencies, upheld cases and dates. Nothing the crowd claimed and
    no agency has verified is shown."""
    by_company: dict[str, dict[str, Any]] = {}
    for case in complaint_stats.exposed(store):
        if month is not None and not case["upheld_at"].startswith(month):
            continue
        entry = by_company.setdefault(case["company"], {
            "company": case["company"], "numbers": set(), "categories": set(), "agencies": set(),
            "upheld_cases": 0, "first_upheld_at": case["upheld_at"], "last_upheld_at": case["upheld_at"]})
        entry["numbers"].add(case["number"])
        entry["categories"].update(case["categories"])
        entry["agencies"].add(case["agency"])
        entry["upheld_cases"] += 1
        entry["first_upheld_at"] = min(entry["first_upheld_at"], case["upheld_at"])
        entry["last_upheld_at"] = max(entry["last_upheld_at"], case["upheld_at"])
    return [{**entry, "numbers": sorted(entry["numbers"]), "categories": sorted(entry["categories"]),
             "agencies": sorted(entry["agencies"])}
            for entry in sorted(by_company.values(), key=lambda e: (-e["upheld_cases"], e["company"]))]


def counts(store: Store) -> list[dict[str, Any]]:
    """Cases now, per agency of the routing table and status (the /admin dashboard): one
    round trip of a ZCARD per bucket, agency and status."""
    table = routing.cached(store.config.routing_file)
    agencies = list(table.agencies.values())
    sizes = iter(store.pipelined(lambda pipe: [
        pipe.zcard(store.keys.cases_by_status(bucket, agency.id, status))
        for agency in agencies for status in STATUSES for bucket in range(store.config.buckets)]))
    out = []
    for agency in agencies:
        row: dict[str, Any] = agency.describe()
        for status in STATUSES:
            row[status] = sum(next(sizes) for _ in range(store.config.buckets))
        out.append(row)
    return out
