"""Private lookup by hash prefix (k-anonymity): the server never learns which number rang.

A client sends the first 4 or 5 hex digits of SHA-256(E.164); the answer lists every
number with a verdict whose hash starts so — by full hash, never by number — and the
client finds its own. docs/PRIVACY.md states what this hides and what it does not.
"""
from __future__ import annotations

import hashlib
import re

from . import reputation
from .errors import InvalidPrefix
from .keys import INDEX_PREFIX_HEX
from .store import Store

PREFIX_PATTERN = re.compile(r"[0-9a-f]{4,5}")  # 16 or 20 bits


def number_hash(number: str) -> str:
    """Lowercase hex SHA-256 of the E.164 string: what clients compute and send a prefix of."""
    return hashlib.sha256(number.encode("utf-8")).hexdigest()


def by_prefix(store: Store, prefix: str) -> dict:
    """Every number with a verdict whose hash starts with `prefix`, keyed by its full hash."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidPrefix("the prefix must be 4 or 5 lowercase hex digits of SHA-256(E.164 number)",
                            {"prefix": prefix})
    assert len(prefix) >= INDEX_PREFIX_HEX  # the index is keyed by the first digits
    pipe = store.redis.pipeline(transaction=False)
    for bucket in range(store.config.buckets):
        pipe.smembers(store.keys.prefix_index_of(bucket, prefix))
    candidates = ["+" + digits for members in pipe.execute() for digits in members]
    hashes = {number: number_hash(number) for number in candidates}
    matching = [n for n in candidates if hashes[n].startswith(prefix)]
    matches = []
    for number, rep in zip(matching, reputation.lookup_many(store, matching)):
        if rep["verdict"] == "unknown":
            continue
        matches.append({"hash": hashes[number], "verdict": rep["verdict"], "label": rep["label"],
                        "reporters": rep["reporters"], "score": rep["score"], "tags": rep["tags"],
                        "lists": rep["lists"]})
    matches.sort(key=lambda m: m["hash"])
    return {"prefix": prefix, "matches": matches}
