"""Operators correct the crowd: overrides with an audit trail, and owners' disputes."""
from __future__ import annotations

import secrets
from typing import Any

from . import reputation
from .errors import Conflict, NotFound, ValidationFailed
from .store import Store

AUDIT_KEEP = 100_000  # audit entries kept (approximately; the oldest go first)


def audit(store: Store, action: str, number: str, actor: str, reason: str, **extra: Any) -> None:
    fields = {"action": action, "number": number, "by": actor, "reason": reason,
              "at": int(store.clock()), **{k: "" if v is None else str(v) for k, v in extra.items()}}
    store.redis.xadd(store.keys.audit(), fields, maxlen=AUDIT_KEEP, approximate=True)


def audit_log(store: Store, number: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit entries first, optionally of one number."""
    out = []
    for entry_id, fields in store.redis.xrevrange(store.keys.audit(), count=AUDIT_KEEP if number else limit):
        if number and fields.get("number") != number:
            continue
        out.append({"id": entry_id, **fields, "at": reputation.iso_unix(int(fields["at"]))})
        if len(out) >= limit:
            break
    return out


def set_override(store: Store, number: str, verdict: str | None, reason: str, actor: str) -> dict[str, Any]:
    """Pin (allow/block) or clear (None) a number's verdict, audited; return its reputation."""
    audit(store, "override" if verdict else "override_cleared", number, actor, reason, verdict=verdict)
    reputation.set_override(store, number, verdict)
    return reputation.lookup(store, number)


def release_hold(store: Store, number: str, reason: str, actor: str) -> dict[str, Any]:
    """End the burst guard's hold on a number (audited); the crowd's verdict applies again."""
    audit(store, "hold_released", number, actor, reason)
    reputation.release_hold(store, number)
    return reputation.lookup(store, number)


def held_numbers(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Numbers the burst guard holds at warn for review, with their reputations."""
    pipe = store.redis.pipeline(transaction=False)
    for bucket in range(store.config.buckets):
        pipe.srandmember(store.keys.held(bucket), limit)
    held = sorted({number for members in pipe.execute() for number in members})[:limit]
    return reputation.lookup_many(store, held)


def open_dispute(store: Store, number: str, reason: str, contact: str) -> dict[str, Any]:
    """Open a dispute; the record keeps what the owner wrote, nothing about their device."""
    dispute_id = secrets.token_hex(8)
    if not store.redis.set(store.keys.dispute_of_number(number), dispute_id, nx=True):
        existing = store.redis.get(store.keys.dispute_of_number(number))
        raise Conflict("a dispute of this number is already open", {"dispute_id": existing})
    now = int(store.clock())
    store.redis.hset(store.keys.dispute(dispute_id), mapping={
        "number": number, "reason": reason, "contact": contact, "status": "open", "opened_at": now})
    store.redis.zadd(store.keys.disputes_open(), {dispute_id: now})
    reputation.set_disputed(store, number, True)
    return {"dispute_id": dispute_id, "number": number, "status": "open"}


def _dispute(store: Store, dispute_id: str) -> dict[str, Any]:
    record = store.redis.hgetall(store.keys.dispute(dispute_id))
    if not record:
        raise NotFound(f"no dispute {dispute_id!r}")
    return record


def open_disputes(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    ids = store.redis.zrange(store.keys.disputes_open(), 0, limit - 1)
    pipe = store.redis.pipeline(transaction=False)
    for dispute_id in ids:
        pipe.hgetall(store.keys.dispute(dispute_id))
    out = []
    for dispute_id, record in zip(ids, pipe.execute()):
        if record:
            out.append({"dispute_id": dispute_id, "number": record["number"], "reason": record["reason"],
                        "contact": record["contact"], "status": record["status"],
                        "opened_at": reputation.iso_unix(int(record["opened_at"])),
                        "reputation": reputation.lookup(store, record["number"])})
    return out


def resolve_dispute(store: Store, dispute_id: str, override: str | None, note: str, actor: str) -> dict[str, Any]:
    """Close a dispute; `override` (allow/block) pins the verdict, None lets the crowd decide again."""
    record = _dispute(store, dispute_id)
    if record["status"] != "open":
        raise Conflict(f"dispute {dispute_id!r} is already {record['status']}")
    if override not in (None, "allow", "block"):
        raise ValidationFailed("override must be allow, block or null")
    number = record["number"]
    if override:
        set_override(store, number, override, f"dispute {dispute_id}: {note}", actor)
    audit(store, "dispute_resolved", number, actor, note, dispute_id=dispute_id, override=override)
    store.redis.hset(store.keys.dispute(dispute_id), mapping={"status": "resolved", "resolution": note,
                                                               "override": override or "",
                                                               "resolved_at": int(store.clock())})
    store.redis.zrem(store.keys.disputes_open(), dispute_id)
    store.redis.delete(store.keys.dispute_of_number(number))
    reputation.set_disputed(store, number, False)
    return {"dispute_id": dispute_id, "number": number, "status": "resolved",
            "reputation": reputation.lookup(store, number)}
