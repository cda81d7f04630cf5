"""Devices: registration, bearer tokens and the keyed reporter ids that votes are filed under."""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from . import dnc, trust
from .errors import Unauthorized
from .keyed import keyed, voter_field  # noqa: F401 (voter_field: callers say devices.voter_field)
from .reputation import withdraw_votes
from .store import Store

DEVICE_ID_BYTES = 8  # 64 random bits, shown to the device as 16 hex characters
TOKEN_SECRET_BYTES = 32  # 256 random bits after the device id: unguessable
AUTH_CACHE_SECONDS = 10.0  # a verified token (and its weight) is trusted this long per process, for reads
AUTH_CACHE_SIZE = 50_000  # tokens remembered per process before the cache starts over
ERASED_VOTER_SECONDS = 86400  # an erased device's votes are refused this long: far past any request in flight


@dataclass(frozen=True)
class Device:
    id: str
    weight: int  # percent: how much its tags count (blocklist/trust.py)
    created: float  # unix time of registration
    standing: int = 0  # numbers its early spam tags were borne out on (blocklist/trust.py)


def register(store: Store, address: str | None = None) -> tuple[str, str]:
    """Create a device; return its id and its bearer token (shown once, stored only hashed)."""
    device_id = secrets.token_hex(DEVICE_ID_BYTES)
    token = f"{device_id}.{secrets.token_urlsafe(TOKEN_SECRET_BYTES)}"
    token_hash = keyed(store.secret, "token", token).hex()
    record = {"h": token_hash, "c": int(store.clock())}
    weight = trust.registration_weight(store, address)
    if weight != trust.FULL:
        record.update(w=weight, b=weight)
    store.redis.hset(store.keys.device(device_id), mapping=record)
    return device_id, token


def authenticate(store: Store, token: str | None, cached: bool = True) -> Device:
    """Return the device a bearer token belongs to, or raise Unauthorized.

    `cached`: a token this process verified within AUTH_CACHE_SECONDS is taken without asking
    Redis. Only reads may: another process may have erased the device since, so a write
    passes False (and its votes are admitted by `admit_votes` in any case).
    """
    if not token:
        raise Unauthorized("a device token is required: send Authorization: Bearer <token>")
    device_id, dot, _ = token.partition(".")
    if not dot or len(device_id) != 2 * DEVICE_ID_BYTES or len(token) > 128:
        raise Unauthorized("the device token is malformed")
    token_hash = keyed(store.secret, "token", token).hex()
    hit = store.auth_cache.get(token_hash) if cached else None
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    stored, weight, created, standing = store.redis.hmget(store.keys.device(device_id), "h", "w", "c", "st")
    if stored is None or not hmac.compare_digest(stored, token_hash):
        raise Unauthorized("the device token is not valid")
    device = Device(device_id, int(weight or trust.FULL), float(created or 0), int(standing or 0))
    if len(store.auth_cache) >= AUTH_CACHE_SIZE:
        store.auth_cache.clear()
    store.auth_cache[token_hash] = (time.monotonic() + AUTH_CACHE_SECONDS, device)
    return device


def erase(store: Store, device_id: str) -> int:
    """Forget a device: its votes leave every number (with change-log entries), its token dies,
    its Do-Not-Call registrations and consents go.

    Returns how many votes were withdrawn. Once its record is gone no write of the device is
    admitted (`admit_votes`); a vote admitted before and still in flight is refused by the
    report script through the tombstones, or lands before them and is withdrawn here.
    """
    keys = store.keys
    voter = voter_field(store.secret, device_id)
    erase_first = store.script("blocklist", "device_erase.lua")
    numbers = ["+" + digits for digits in erase_first(keys=[keys.device(device_id), keys.device_votes(device_id)])]
    store.pipelined(lambda pipe: [pipe.set(keys.erased_voter(bucket, voter), 1, ex=ERASED_VOTER_SECONDS)
                                  for bucket in range(store.config.buckets)])
    withdrawn = withdraw_votes(store, numbers, voter)
    trust.forget(store, device_id)
    dnc.erase_device(store, device_id)
    store.redis.delete(keys.device_votes(device_id))
    store.auth_cache.clear()
    return withdrawn


def admit_votes(store: Store, device_id: str, numbers: list[str]) -> None:
    """Before a device's votes are cast: check in one step with noting their numbers (so
    `erase` finds every vote that may land) that the device still exists; else Unauthorized."""
    admit = store.script("blocklist", "device_admit.lua")
    if not admit(keys=[store.keys.device(device_id), store.keys.device_votes(device_id)],
                 args=[number.lstrip("+") for number in numbers]):
        raise Unauthorized("the device token is not valid")
