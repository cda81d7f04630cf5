"""The change log: one Redis stream per bucket, read as one ordered sequence.

Every change of a number's verdict or label is appended, by the report script, to its
bucket's stream. Readers (list publishing, the vendor feed) merge the buckets by
(stream id, bucket) and keep their place in an opaque cursor that records the last id
read in each bucket, so paging with any page size yields the same sequence and a
cursor stays valid across restarts.
"""
from __future__ import annotations

import base64
import binascii
import heapq
import json
import zlib
from dataclasses import dataclass

from . import lists, tags
from .errors import ValidationFailed
from .reputation import VERDICTS
from .store import Store

MIN_CHUNK = 32  # entries fetched from a bucket per round trip, at least


@dataclass(frozen=True)
class Change:
    bucket: int
    id: str  # the entry's stream id in its bucket
    number: str
    verdict: str
    label: str | None
    reporters: int
    score: float
    updated_at: int  # unix seconds

    @property
    def lists(self) -> list[str]:
        return lists.lists_for(self.verdict, self.label)


def encode_cursor(positions: dict[int, str]) -> str:
    raw = json.dumps({str(b): i for b, i in sorted(positions.items())}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_cursor(cursor: str | None, buckets: int) -> dict[int, str]:
    """Positions per bucket from a cursor; an empty cursor starts at the oldest entry."""
    if not cursor:
        return {}
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        positions = {int(b): str(i) for b, i in json.loads(raw).items()}
        for bucket, entry in positions.items():
            ms, _, seq = entry.partition("-")
            if not (0 <= bucket < buckets and ms.isdigit() and seq.isdigit()):
                raise ValueError(entry)
    except (ValueError, TypeError, AttributeError, zlib.error, binascii.Error):
        raise ValidationFailed("the cursor is not valid", {"cursor": cursor}) from None
    return positions


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable (milliseconds, sequence) pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _sort_key(bucket: int, entry_id: str) -> tuple[int, int, int]:
    return (*entry_key(entry_id), bucket)


def head_cursor(store: Store) -> str:
    """A cursor just past the newest entry of every bucket: "from now on"."""
    pipe = store.redis.pipeline(transaction=False)
    for bucket in range(store.config.buckets):
        pipe.xrevrange(store.keys.changes(bucket), count=1)
    return encode_cursor({b: last[0][0] for b, last in enumerate(pipe.execute()) if last})


def _change(bucket: int, entry_id: str, fields: dict[str, str]) -> Change:
    label = fields.get("l", "")
    return Change(
        bucket=bucket,
        id=entry_id,
        number=fields["n"],
        verdict=VERDICTS[int(fields["v"])],
        label=tags.TAXONOMY[int(label)].code if label != "" else None,
        reporters=int(fields["r"]),
        score=float(fields["s"]),
        updated_at=int(fields["t"]),
    )


def read(store: Store, cursor: str | None, limit: int) -> tuple[list[Change], str]:
    """Up to `limit` changes after `cursor`, oldest first, and the cursor that follows them."""
    positions = decode_cursor(cursor, store.config.buckets)
    chunk = max(MIN_CHUNK, 2 * limit // store.config.buckets + 1)
    buffers: dict[int, list] = {}
    exhausted: set[int] = set()

    def fetch(bucket_ids: list[int]) -> None:
        pipe = store.redis.pipeline(transaction=False)
        for bucket in bucket_ids:
            start = positions.get(bucket)
            pipe.xrange(store.keys.changes(bucket), min=f"({start}" if start else "-", count=chunk)
        for bucket, entries in zip(bucket_ids, pipe.execute()):
            buffers[bucket] = list(reversed(entries))  # pop() takes the oldest
            if len(entries) < chunk:
                exhausted.add(bucket)

    fetch(list(range(store.config.buckets)))
    heap = [(_sort_key(b, buf[-1][0]), b) for b, buf in buffers.items() if buf]
    heapq.heapify(heap)
    changes: list[Change] = []
    while heap and len(changes) < limit:
        _, bucket = heapq.heappop(heap)
        entry_id, fields = buffers[bucket].pop()
        positions[bucket] = entry_id
        changes.append(_change(bucket, entry_id, fields))
        if not buffers[bucket] and bucket not in exhausted:
            fetch([bucket])
        if buffers[bucket]:
            heapq.heappush(heap, (_sort_key(bucket, buffers[bucket][-1][0]), bucket))
    return changes, encode_cursor(positions)
