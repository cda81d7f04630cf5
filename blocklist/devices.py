"""Devices: registration, bearer tokens and the keyed reporter ids that votes are filed under."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from . import trust
from .errors import Unauthorized
from .reputation import withdraw_votes
from .store import Store

DEVICE_ID_BYTES = 8  # 64 random bits, shown to the device as 16 hex characters
TOKEN_SECRET_BYTES = 32  # 256 random bits after the device id: unguessable
VOTER_FIELD_CHARS = 8  # 48 bits of keyed hash per voter within one number's hash
AUTH_CACHE_SECONDS = 10.0  # a verified token (and its weight) is trusted this long per process
AUTH_CACHE_SIZE = 50_000  # tokens remembered per process before the cache starts over


def _keyed(secret: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()


def voter_field(secret: bytes, reporter_id: str) -> str:
    """The field a reporter's vote is stored under: a keyed hash, never the id itself."""
    return base64.urlsafe_b64encode(_keyed(secret, "voter", reporter_id)).decode()[:VOTER_FIELD_CHARS]


@dataclass(frozen=True)
class Device:
    id: str
    weight: int  # percent: how much its tags count (blocklist/trust.py)
    created: float  # unix time of registration


def register(store: Store, address: str | None = None) -> tuple[str, str]:
    """Create a device; return its id and its bearer token (shown once, stored only hashed)."""
    device_id = secrets.token_hex(DEVICE_ID_BYTES)
    token = f"{device_id}.{secrets.token_urlsafe(TOKEN_SECRET_BYTES)}"
    token_hash = _keyed(store.secret, "token", token).hex()
    record = {"h": token_hash, "c": int(store.clock())}
    weight = trust.registration_weight(store, address)
    if weight != trust.FULL:
        record.update(w=weight, b=weight)
    store.redis.hset(store.keys.device(device_id), mapping=record)
    return device_id, token


def authenticate(store: Store, token: str | None) -> Device:
    """Return the device a bearer token belongs to, or raise Unauthorized."""
    if not token:
        raise Unauthorized("a device token is required: send Authorization: Bearer <token>")
    device_id, dot, _ = token.partition(".")
    if not dot or len(device_id) != 2 * DEVICE_ID_BYTES or len(token) > 128:
        raise Unauthorized("the device token is malformed")
    token_hash = _keyed(store.secret, "token", token).hex()
    cached = store.auth_cache.get(token_hash)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    stored, weight, created = store.redis.hmget(store.keys.device(device_id), "h", "w", "c")
    if stored is None or not hmac.compare_digest(stored, token_hash):
        raise Unauthorized("the device token is not valid")
    device = Device(device_id, int(weight or trust.FULL), float(created or 0))
    if len(store.auth_cache) >= AUTH_CACHE_SIZE:
        store.auth_cache.clear()
    store.auth_cache[token_hash] = (time.monotonic() + AUTH_CACHE_SECONDS, device)
    return device


def erase(store: Store, device_id: str) -> int:
    """Forget a device: its votes leave every number (with change-log entries), its token dies.

    Returns how many votes were withdrawn. Other processes may trust the token from their
    cache for up to AUTH_CACHE_SECONDS more.
    """
    numbers = ["+" + digits for digits in store.redis.smembers(store.keys.device_votes(device_id))]
    withdrawn = withdraw_votes(store, numbers, voter_field(store.secret, device_id))
    trust.forget(store, device_id)
    store.redis.delete(store.keys.device(device_id), store.keys.device_votes(device_id))
    store.auth_cache.clear()
    return withdrawn


def remember_votes(store: Store, device_id: str, numbers: list[str], pipeline) -> None:
    """Record which numbers a device voted on, so `erase` can find its votes."""
    if numbers:
        pipeline.sadd(store.keys.device_votes(device_id), *[n.lstrip("+") for n in numbers])
