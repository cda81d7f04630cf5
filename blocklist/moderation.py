"""Operators correct the crowd: overrides with an audit trail, and owners' disputes.

Audit entries and disputes live on their number's bucket slot, so every step (open or
resolve a dispute, set or clear an override, release a hold) is one call of
lua/moderation.lua that changes the number and its records together. Listings merge the
buckets' streams and sets in one pipelined round trip.
"""
from __future__ import annotations

import heapq
import re
import secrets
from typing import Any

from . import reputation
from .errors import Conflict, NotFound, ValidationFailed
from .store import Store

AUDIT_KEEP = 100_000  # audit entries kept over all buckets (approximately; a bucket's oldest go first)
AUDIT_PAGE = 1000  # entries read per round trip when looking for one number's
DISPUTE_ID = re.compile(r"^(0|[1-9][0-9]{0,4})-[0-9a-f]{16}$")  # <bucket>-<16 hex>
OVERRIDES = ("allow", "block")


def _step(store: Store, step: str, number: str, actor: str = "", reason: str = "", verdict: str | None = None,
          dispute_id: str = "", contact: str = "") -> list:
    """Run one step of lua/moderation.lua on a number's bucket slot; returns [outcome, detail]."""
    keys = store.keys
    bucket = keys.bucket_of(number)
    script_keys = [keys.number(number), keys.changes(bucket), keys.decay_schedule(bucket), keys.prefix_index(number),
                   keys.held(bucket), keys.talkers(number), keys.audit(bucket), keys.disputes_open(bucket),
                   keys.dispute_of_number(number),
                   keys.dispute(bucket, dispute_id) if dispute_id else keys.number(number)]
    args = [step, number, int(store.clock()), reputation._min_stream_id(store), number.lstrip("+"),
            -(-AUDIT_KEEP // store.config.buckets), actor, reason, verdict or "", dispute_id, contact]
    return store.moderation_script(keys=script_keys, args=args)


def _entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {"id": entry_id, **fields, "at": reputation.iso_unix(int(fields["at"]))}


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def audit_log(store: Store, number: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit entries first, optionally of one number."""
    if number:
        return _audit_of(store, number, limit)
    buckets = range(store.config.buckets)
    streams = store.pipelined(lambda pipe: [pipe.xrevrange(store.keys.audit(b), count=limit) for b in buckets])
    newest = heapq.merge(*streams, key=lambda entry: _stream_order(entry[0]), reverse=True)
    return [_entry(entry_id, fields) for entry_id, fields in list(newest)[:limit]]


def _audit_of(store: Store, number: str, limit: int) -> list[dict[str, Any]]:
    """One number's entries, newest first, from its bucket's stream."""
    stream, out, before = store.keys.audit(store.keys.bucket_of(number)), [], "+"
    while len(out) < limit:
        page = store.redis.xrevrange(stream, max=before, count=AUDIT_PAGE)
        out += [_entry(entry_id, fields) for entry_id, fields in page if fields.get("number") == number]
        if len(page) < AUDIT_PAGE:
            break
        before = "(" + page[-1][0]
    return out[:limit]


def set_override(store: Store, number: str, verdict: str | None, reason: str, actor: str) -> dict[str, Any]:
    """Pin (allow/block) or clear (None) a number's verdict, audited; return its reputation."""
    if verdict not in (None, *OVERRIDES):
        raise ValidationFailed("verdict must be allow, block or null")
    _step(store, "override", number, actor, reason, verdict)
    return reputation.lookup(store, number)


def release_hold(store: Store, number: str, reason: str, actor: str) -> dict[str, Any]:
    """End the burst guard's hold on a number (audited); the crowd's verdict applies again.
    Conflict, writing nothing, when the number is not held."""
    outcome, _ = _step(store, "release", number, actor, reason)
    if outcome == "not_held":
        raise Conflict(f"{number} is not held by the burst guard: there is nothing to release")
    return reputation.lookup(store, number)


def held_numbers(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Numbers the burst guard holds at warn for review, with their reputations."""
    pipe = store.redis.pipeline(transaction=False)
    for bucket in range(store.config.buckets):
        pipe.srandmember(store.keys.held(bucket), limit)
    held = sorted({number for members in pipe.execute() for number in members})[:limit]
    return reputation.lookup_many(store, held)


def open_dispute(store: Store, number: str, reason: str, contact: str) -> dict[str, Any]:
    """Open a dispute for an operator to resolve; it changes no verdict by itself. The record
    keeps what the owner wrote, nothing about their device."""
    dispute_id = f"{store.keys.bucket_of(number)}-{secrets.token_hex(8)}"
    outcome, detail = _step(store, "open", number, reason=reason, dispute_id=dispute_id, contact=contact)
    if outcome == "conflict":
        raise Conflict("a dispute of this number is already open", {"dispute_id": detail})
    return {"dispute_id": dispute_id, "number": number, "status": "open"}


def _bucket_of_dispute(store: Store, dispute_id: str) -> int:
    """The bucket a dispute id names; NotFound for an id CallMark never made."""
    match = DISPUTE_ID.fullmatch(dispute_id)
    if not match or int(match.group(1)) >= store.config.buckets:
        raise NotFound(f"no dispute {dispute_id!r}")
    return int(match.group(1))


def open_disputes(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Open disputes of every bucket, oldest first (the order operators work through them)."""
    buckets = range(store.config.buckets)
    opened = store.pipelined(lambda pipe: [pipe.zrange(store.keys.disputes_open(b), 0, limit - 1, withscores=True)
                                           for b in buckets])
    oldest = sorted(((at, dispute_id) for ids in opened for dispute_id, at in ids))[:limit]
    records = store.pipelined(lambda pipe: [pipe.hgetall(store.keys.dispute(_bucket_of_dispute(store, dispute_id),
                                                                            dispute_id))
                                            for _, dispute_id in oldest]) if oldest else []
    found = [(dispute_id, record) for (_, dispute_id), record in zip(oldest, records) if record]
    reputations = reputation.lookup_many(store, [record["number"] for _, record in found])
    return [{"dispute_id": dispute_id, "number": record["number"], "reason": record["reason"],
             "contact": record["contact"], "status": record["status"],
             "opened_at": reputation.iso_unix(int(record["opened_at"])), "reputation": shown}
            for (dispute_id, record), shown in zip(found, reputations)]


def resolve_dispute(store: Store, dispute_id: str, override: str | None, note: str, actor: str) -> dict[str, Any]:
    """Close a dispute; `override` (allow/block) pins the verdict, None lets the crowd decide again."""
    if override not in (None, *OVERRIDES):
        raise ValidationFailed("override must be allow, block or null")
    bucket = _bucket_of_dispute(store, dispute_id)
    number = store.redis.hget(store.keys.dispute(bucket, dispute_id), "number")
    if number is None:
        raise NotFound(f"no dispute {dispute_id!r}")
    outcome, detail = _step(store, "resolve", number, actor, note, override, dispute_id)
    if outcome == "absent":
        raise NotFound(f"no dispute {dispute_id!r}")
    if outcome == "closed":
        raise Conflict(f"dispute {dispute_id!r} is already {detail}")
    return {"dispute_id": dispute_id, "number": number, "status": "resolved",
            "reputation": reputation.lookup(store, number)}
