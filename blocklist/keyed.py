"""Keyed hashes: how the store names people (tokens, voters, networks, addresses, API keys)
without keeping who they are. One secret (Store.secret), a purpose per use, so a hash made
for one use says nothing about another."""
from __future__ import annotations

import base64
import hashlib
import hmac

VOTER_FIELD_CHARS = 8  # 48 bits of keyed hash per voter within one number's hash


def keyed(secret: bytes, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of `purpose:value` under the service secret."""
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()


def voter_field(secret: bytes, reporter_id: str) -> str:
    """The field a reporter's vote is stored under: a keyed hash, never the id itself."""
    return base64.urlsafe_b64encode(keyed(secret, "voter", reporter_id)).decode()[:VOTER_FIELD_CHARS]
