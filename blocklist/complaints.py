"""Complaints: the 12321 form's fields, routed to the agency responsible for the call's sector.

A complaint is also the device's vote with its tag, cast exactly as a report is (the same
rules, idempotency and guards: blocklist/reports.py), and then filed in the case of its number
at its agency (blocklist/routing.py chooses the agency; blocklist/cases.py handles the case).
Filing is one script on the number's bucket slot (lua/complaint_file.lua): the complaint, its
case, opened or reopened, and the indexes change together.

What a complaint keeps: the number, tag, company, content, call time and type, duration, the
region the reporter chose to give, when it was received, its agency and case, and whether the
call was to a Do-Not-Call registration and broke it. It never names the device: the device's
list of its own complaints is kept beside the device (and deleted with it), and the contact a
reporter consented to give is kept AES-GCM encrypted and deleted on erasure. Complaints are
deleted CALLMARK_COMPLAINT_RETENTION_DAYS after receipt (`sweep`); their case and the public
monthly counts (blocklist/complaint_stats.py) stay.
"""
from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

from sync.signing import iso

from . import complaint_stats, devices, dnc, reports, routing, tags
from .errors import ValidationFailed
from .keyed import keyed
from .numbers import normalize
from .store import Store

CALL_TYPES = ("live", "recorded", "robocall", "ring_once", "sms")
MAX_CONTENT = 2000  # characters of what was said
FUTURE_SLACK = 300  # seconds a call_at may lie ahead of the clock (phones' clocks drift)
CASE_AUDIT_KEEP = 1000  # audit entries kept per case (approximately)
MINE_LIMIT = 200  # complaints GET /v1/complaints/me shows, newest first
SWEEP_BATCH = 500  # complaints deleted per round trip by the retention sweep
STATUSES = ("received", "verifying", "upheld", "rejected")

# A complaint's fields in Redis: short names, as the number hash has (docs/STORAGE.md).
FIELDS = {"number": "n", "tag": "t", "company": "co", "content": "ct", "call_at": "ca", "call_type": "cy",
          "duration_seconds": "du", "reporter_region": "rr", "received_at": "r", "agency": "a",
          "dnc_registered": "dr", "dnc_violation": "v"}
CONTACT = "x"  # the contact, sealed
CASE = "k"  # the case id


def _id(store: Store, bucket: int, device_id: str, report_id: str | None) -> str:
    """`<bucket>-<16 hex>`: from the device and its report id when it gave one (so that sending
    the complaint again files nothing new), else random."""
    if report_id is None:
        return f"{bucket}-{secrets.token_hex(8)}"
    return f"{bucket}-{keyed(store.secret, 'complaint', device_id + chr(0) + report_id).hex()[:16]}"


def bucket_of_id(store: Store, complaint_id: str) -> int | None:
    """The bucket an id names, or None for an id CallMark never made."""
    head, dash, tail = complaint_id.partition("-")
    if not (dash and head.isdigit() and len(tail) == 16 and all(c in "0123456789abcdef" for c in tail)):
        return None
    bucket = int(head)
    return bucket if bucket < store.config.buckets and str(bucket) == head else None


def _table(store: Store) -> routing.Routing:
    return routing.cached(store.config.routing_file)


def file(store: Store, device: devices.Device, address: str | None, item: dict[str, Any]) -> dict[str, Any]:
    """File one validated complaint (ComplaintSchema) for `device`: its vote, then the complaint
    in its case. InvalidNumber for a number that is not one; ValidationFailed for a call time
    more than FUTURE_SLACK ahead."""
    now = store.clock()
    call_at = item.get("call_at")
    if call_at is not None and call_at > now + FUTURE_SLACK:
        raise ValidationFailed(f"call_at lies more than {FUTURE_SLACK // 60} minutes ahead of now",
                               {"fields": {"call_at": ["in the future"]}})
    region = item.get("region") or store.config.default_region
    called = normalize(item["called_number"], region) if "called_number" in item else None  # before any write
    call = {key: value for key, value in (("at", call_at), ("duration_seconds", item.get("duration_seconds")))
            if value is not None}
    report = {key: item[key] for key in ("number", "tag", "region", "company", "report_id", "called_number")
              if key in item}
    if "content" in item:
        report["note"] = item["content"][:500]  # the report's own note is shorter; the complaint keeps it all
    if call:
        report["call"] = call
    vote, _ = reports.cast(store, device, address, report)
    agency = _table(store).agency_for(vote.tag)
    registered = _registered(store, device.id, called)
    bucket = store.keys.bucket_of(vote.number)
    complaint_id = _id(store, bucket, device.id, item.get("report_id"))
    record = {
        "number": vote.number, "tag": vote.tag, "company": item.get("company", ""), "content": item.get("content", ""),
        "call_at": min(call_at, now) if call_at is not None else now, "call_type": item.get("call_type", ""),
        "duration_seconds": item.get("duration_seconds", ""), "reporter_region": item.get("reporter_region", ""),
        "received_at": now, "agency": agency.id, "dnc_registered": int(registered),
        "dnc_violation": int(vote.violation)}
    fields = {FIELDS[name]: value for name, value in record.items() if value != ""}
    complaint_key = store.keys.complaint(bucket, complaint_id)
    if item.get("contact_consent") and item.get("contact"):
        fields[CONTACT] = dnc.seal(store, f"{complaint_key}:{CONTACT}", item["contact"])
    outcome, case_id, status, opened = _file(store, device.id, complaint_id, bucket, agency.id, vote.number,
                                             vote.tag, item.get("company", ""), vote.violation, now, fields)
    if opened:
        complaint_stats.case_step(store, agency.id, "received", now)
    return {"complaint_id": complaint_id, "number": vote.number, "case_id": case_id, "agency": agency.id,
            "case_status": status, "dnc_violation": vote.violation, "duplicate": outcome == "exists"}


def _registered(store: Store, device_id: str, called: str | None) -> bool:
    """Whether the call was to a live Do-Not-Call registration of the device: the number that
    rang (E.164), or without it the device's only registration."""
    mine = [answer["number"] for answer in dnc.registrations_of(store, device_id)]
    return called in mine if called is not None else len(mine) == 1


def _queue_file(store: Store, pipe, complaint_id: str, bucket: int, agency: str, number: str, tag: str,
                company: str, violation: bool, now: float, fields: dict[str, Any]) -> None:
    """Queue lua/complaint_file.lua for one complaint on `pipe`."""
    keys = store.keys
    script_keys = [keys.complaint(bucket, complaint_id), keys.complaints_received(bucket), keys.case(agency, number),
                   keys.case_complaints(agency, number), keys.case_audit(agency, number), keys.case_ids(bucket),
                   *(keys.cases_by_status(bucket, agency, status) for status in STATUSES)]
    args = [complaint_id, f"{now:.3f}", f"{bucket}-{secrets.token_hex(8)}", agency, number, tag, company,
            int(violation), CASE_AUDIT_KEEP, *(part for pair in fields.items() for part in pair)]
    store.evalsha(pipe, store.script("blocklist", "complaint_file.lua"), script_keys, args)


def _file(store: Store, device_id: str, complaint_id: str, bucket: int, agency: str, number: str, tag: str,
          company: str, violation: bool, now: float, fields: dict[str, Any]) -> tuple[str, str, str, bool]:
    """Run lua/complaint_file.lua, note the complaint in the device's list and count it in the
    public figures, in one round trip; returns (filed | exists, case id, case status, whether
    the case was opened). A device erased meanwhile keeps no note, and the complaint it filed
    keeps no contact. (A complaint sent again is counted again only on another day: the
    figures count a device once per number per day.)"""
    keys = store.keys
    note = store.script("blocklist", "device_field.lua")

    def fill(pipe) -> None:
        _queue_file(store, pipe, complaint_id, bucket, agency, number, tag, company, violation, now, fields)
        store.evalsha(pipe, note, [keys.device(device_id), keys.device_complaints(device_id)],
                      [complaint_id, f"{now:.3f}"])
        complaint_stats.queue_complained(store, pipe, device_id, number, tag, now)

    (outcome, case_id, *rest), noted, _ = store.pipelined(fill)
    if not noted:
        store.redis.hdel(keys.complaint(bucket, complaint_id), CONTACT)
    if outcome == "exists":
        return outcome, case_id, _case_status(store, bucket, case_id), False
    return outcome, case_id, rest[0], bool(rest[1])


@dataclass(frozen=True)
class Imported:
    """A complaint of an imported file (blocklist/importer.py): no device, one reporter per row."""

    reporter: str  # the row's own reporter ("ftc:<file sha256>:<row>"): its id and its public counting
    number: str
    tag: str
    received: float
    call_at: float | None
    reporter_region: str


def file_imported(store: Store, rows: list[Imported]) -> dict[str, int]:
    """File imported complaints, pipelined: each in the case of its number at its agency, and
    counted in the public figures. A row already filed (the same file again) files nothing;
    one received past CALLMARK_COMPLAINT_RETENTION_DAYS is counted in the figures but not kept.
    Returns how many were filed, already filed and past the retention."""
    table, now = _table(store), store.clock()
    cutoff = now - store.config.complaint_retention_days * 86400
    kept = [row for row in rows if row.received >= cutoff]
    old = [row for row in rows if row.received < cutoff]

    def queue(pipe) -> None:
        for row in kept:
            bucket = store.keys.bucket_of(row.number)
            record = {"number": row.number, "tag": row.tag, "call_at": row.call_at if row.call_at is not None
                      else row.received, "reporter_region": row.reporter_region, "received_at": row.received,
                      "agency": table.agency_for(row.tag).id, "dnc_registered": 0, "dnc_violation": 0}
            fields = {FIELDS[name]: value for name, value in record.items() if value != ""}
            _queue_file(store, pipe, _id(store, bucket, row.reporter, "import"), bucket, record["agency"], row.number,
                        row.tag, "", False, row.received, fields)

    replies = store.pipelined(queue) if kept else []
    filed = [(row, reply) for row, reply in zip(kept, replies) if reply[0] == "filed"]

    def count(pipe) -> None:
        for row in [row for row, _ in filed] + old:
            complaint_stats.queue_complained(store, pipe, row.reporter, row.number, row.tag, row.received)
        for row, reply in filed:
            if reply[3]:  # the case was opened
                complaint_stats.queue_case_step(store, pipe, table.agency_for(row.tag).id, "received", row.received)

    if filed or old:
        store.pipelined(count)
    return {"filed": len(filed), "already": len(kept) - len(filed), "past_retention": len(old)}


def _case_status(store: Store, bucket: int, case_id: str) -> str:
    where = store.redis.hget(store.keys.case_ids(bucket), case_id)
    if where is None:
        return ""
    agency, _, number = where.partition("|")
    return store.redis.hget(store.keys.case(agency, number), "s") or ""


def shown(store: Store, complaint_id: str, record: dict[str, str], contact: bool = False) -> dict[str, Any]:
    """A stored complaint as the API shows it; its contact only when `contact` (a regulator's view)."""
    out: dict[str, Any] = {"complaint_id": complaint_id}
    for name, field in FIELDS.items():
        value = record.get(field)
        if name in ("call_at", "received_at"):
            out[name] = iso(float(value)) if value else None
        elif name == "duration_seconds":
            out[name] = float(value) if value else None
        elif name in ("dnc_registered", "dnc_violation"):
            out[name] = value == "1"
        else:
            out[name] = value or None
    out["tag_zh"] = tags.BY_CODE[out["tag"]].name_zh if out["tag"] in tags.BY_CODE else None
    out["case_id"] = record.get(CASE)
    if contact:
        sealed = record.get(CONTACT)
        bucket = bucket_of_id(store, complaint_id)
        out["contact"] = dnc.unseal(store, f"{store.keys.complaint(bucket, complaint_id)}:{CONTACT}", sealed) \
            if sealed and bucket is not None else None
    return out


def read_many(store: Store, complaint_ids: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(id, record) of the complaints that still exist, in the given order; one round trip."""
    ids = [(cid, bucket) for cid in complaint_ids if (bucket := bucket_of_id(store, cid)) is not None]
    records = store.pipelined(lambda pipe: [pipe.hgetall(store.keys.complaint(b, cid)) for cid, b in ids]) if ids else []
    return [(cid, record) for (cid, _), record in zip(ids, records) if record]


def statuses(store: Store, records: list[tuple[str, dict[str, str]]]) -> dict[str, tuple[str, str]]:
    """case id -> (its agency now, its status) for the cases of `records`; two round trips."""
    cases = sorted({(bucket_of_id(store, cid), record[CASE]) for cid, record in records if record.get(CASE)})
    wheres = store.pipelined(lambda pipe: [pipe.hget(store.keys.case_ids(b), case_id) for b, case_id in cases]) \
        if cases else []
    located = [(case_id, *where.partition("|")[::2]) for (_, case_id), where in zip(cases, wheres) if where]
    found = store.pipelined(lambda pipe: [pipe.hget(store.keys.case(agency, number), "s")
                                          for _, agency, number in located]) if located else []
    return {case_id: (agency, status or "") for (case_id, agency, _), status in zip(located, found)}


def of_device(store: Store, device_id: str) -> list[dict[str, Any]]:
    """The device's own complaints, newest first, with their cases' status (never a contact)."""
    noted = store.redis.hgetall(store.keys.device_complaints(device_id))
    newest = sorted(noted, key=lambda cid: float(noted[cid]), reverse=True)[:MINE_LIMIT]
    records = read_many(store, newest)
    cases = statuses(store, records)
    out = []
    for cid, record in records:
        shown_ = shown(store, cid, record)
        agency, status = cases.get(record.get(CASE, ""), (shown_["agency"], ""))
        out.append({**shown_, "agency": agency, "case_status": status or None})
    return out


def detach_device(store: Store, device_id: str) -> None:
    """On erasure: forget which complaints were the device's and the contacts it gave; the
    complaints stay as evidence, naming no device."""
    mine = list(store.redis.hgetall(store.keys.device_complaints(device_id)))
    ids = [(cid, bucket) for cid in mine if (bucket := bucket_of_id(store, cid)) is not None]
    store.pipelined(lambda pipe: [*(pipe.hdel(store.keys.complaint(b, cid), CONTACT) for cid, b in ids),
                                  pipe.delete(store.keys.device_complaints(device_id))])


def received_between(store: Store, start: float, end: float, batch: int = 1000) -> Iterator[tuple[str, dict]]:
    """Every complaint received in [start, end), oldest first across the buckets: each bucket's
    ids are read a small page at a time and merged, and the records of each `batch` of merged
    ids are read in one round trip. What the exports stream, in constant memory."""

    page_size = max(16, batch // 8)  # ids held per bucket while merging: bounded by buckets × this

    def ids_of(bucket: int) -> Iterator[tuple[float, str, int]]:
        low = f"{start}"
        while True:
            page = store.redis.zrangebyscore(store.keys.complaints_received(bucket), low, f"({end}",
                                             start=0, num=page_size, withscores=True)
            yield from ((at, cid, bucket) for cid, at in page)
            if len(page) < page_size:
                return
            # Ids of one time sort by id; a page that ends inside a run of equal times goes on by rank.
            last_id, last_at = page[-1]
            low = f"({last_at}"
            rest = store.redis.zrangebyscore(store.keys.complaints_received(bucket), last_at, last_at)
            yield from ((last_at, cid, bucket) for cid in rest if cid > last_id)

    merged = heapq.merge(*(ids_of(bucket) for bucket in range(store.config.buckets)))
    while chunk := list(islice(merged, batch)):
        records = store.pipelined(lambda pipe: [pipe.hgetall(store.keys.complaint(b, cid)) for _, cid, b in chunk])
        for (_, cid, _), record in zip(chunk, records):
            if record:
                yield cid, record


def sweep(store: Store) -> int:
    """Delete the complaints received more than CALLMARK_COMPLAINT_RETENTION_DAYS ago, with
    their index entries; their cases and the public counts stay. Returns how many."""
    cutoff = store.clock() - store.config.complaint_retention_days * 86400
    deleted = 0
    for bucket in range(store.config.buckets):
        index = store.keys.complaints_received(bucket)
        while ids := store.redis.zrangebyscore(index, "-inf", f"({cutoff}", start=0, num=SWEEP_BATCH):
            cases = store.pipelined(lambda pipe: [pipe.hget(store.keys.complaint(bucket, cid), CASE) for cid in ids])
            wheres = store.pipelined(lambda pipe: [pipe.hget(store.keys.case_ids(bucket), case_id or "")
                                                   for case_id in cases])

            def drop(pipe) -> None:
                for cid, where in zip(ids, wheres):
                    if where:
                        agency, _, number = where.partition("|")
                        pipe.zrem(store.keys.case_complaints(agency, number), cid)
                    pipe.delete(store.keys.complaint(bucket, cid))
                pipe.zrem(index, *ids)
            store.pipelined(drop)
            deleted += len(ids)
    return deleted
