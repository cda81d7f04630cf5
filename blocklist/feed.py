"""The reputation feed for app vendors: changes since a cursor, and a full export."""
from __future__ import annotations

import json
import re
import time
from typing import Iterator

from . import changelog, reputation
from .errors import CursorExpired, ValidationFailed
from .store import Store

EXPORT_SCAN = 1000  # number keys fetched per SCAN step; bounds the export's memory
# A position in a cursor is a Redis stream id: two unsigned 64-bit integers in ASCII digits
# (str.isdigit() also takes "²" and "١٢٣", which int() and Redis refuse).
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MAX_STREAM_PART = 2**64 - 1


def _entry(change: changelog.Change, violations: int) -> dict:
    return {
        "number": change.number,
        "verdict": change.verdict,
        "label": change.label,
        "reporters": change.reporters,
        "score": change.score,
        "lists": change.lists,
        "updated_at": reputation.iso_unix(change.updated_at),
        "dnc_violations": violations,
    }


def page(store: Store, cursor: str | None, limit: int) -> dict:
    """`GET /v1/feed`: up to `limit` changes after `cursor`, oldest first."""
    _check_retention(store, _positions(store, cursor))
    changes, next_cursor = changelog.read(store, cursor, limit)
    # Violations are evidence, not a change of verdict: the count is the number's as the page is read.
    violations = reputation.violations_many(store, [c.number for c in changes])
    return {"changes": [_entry(c, v) for c, v in zip(changes, violations)], "next_cursor": next_cursor}


def _positions(store: Store, cursor: str | None) -> dict[int, str]:
    """The cursor's position in each bucket; 400 unless every one is a stream id Redis takes."""
    invalid = ValidationFailed("the cursor is not valid", {"cursor": cursor})
    try:
        positions = changelog.decode_cursor(cursor, store.config.buckets)
    except RecursionError:  # a short cursor can inflate to JSON nested past the parser's limit
        raise invalid from None
    for entry in positions.values():
        if not STREAM_ID.fullmatch(entry):
            raise invalid
        ms, seq = changelog.entry_key(entry)
        # Reading resumes after the position, and nothing can come after the largest id.
        if ms > MAX_STREAM_PART or seq > MAX_STREAM_PART or (ms, seq) == (MAX_STREAM_PART, MAX_STREAM_PART):
            raise invalid
    return positions


def _check_retention(store: Store, positions: dict[int, str]) -> None:
    """410 when entries after the cursor may already have been trimmed away."""
    oldest_ms = (time.time() - store.config.change_retention_days * 86400) * 1000
    stale = {b: p for b, p in positions.items() if int(p.partition("-")[0]) < oldest_ms}
    if not stale:
        return
    pipe = store.redis.pipeline(transaction=False)
    for bucket in stale:
        pipe.xrange(store.keys.changes(bucket), count=1)
    for (bucket, position), first in zip(stale.items(), pipe.execute()):
        if first and changelog.entry_key(first[0][0]) > changelog.entry_key(position):
            raise CursorExpired(
                f"the cursor is older than the {store.config.change_retention_days}-day feed retention; "
                "reload everything from /v1/feed/export, then continue from its cursor",
                {"export": "/v1/feed/export"})


def export(store: Store) -> Iterator[bytes]:
    """NDJSON of every number with a verdict, then `{"next_cursor": …}` taken before the scan."""
    cursor = changelog.head_cursor(store)  # before the scan: nothing changed during it is lost
    for numbers in scan_numbers(store):
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in reputation.lookup_many(store, numbers)
                 if r["verdict"] != "unknown"]
        if lines:
            yield "".join(lines).encode()
    yield (json.dumps({"next_cursor": cursor}) + "\n").encode()


def scan_numbers(store: Store) -> Iterator[list[str]]:
    """Every number with a reputation hash, in chunks (SCAN: other work goes on meanwhile)."""
    for keys in _chunks(store.redis.scan_iter(match=store.keys.number_pattern(), count=EXPORT_SCAN, _type="hash"),
                        EXPORT_SCAN):
        yield [store.keys.number_of(key) for key in keys]


def _chunks(items, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
