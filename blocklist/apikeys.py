"""API keys for app vendors (scope `feed`), telemarketers scrubbing their lists against the
Do-Not-Call registry (scope `scrub`), regulators handling the complaints routed to their agency
(scope `regulator`, bound to one agency of the routing table) and operators (scope `admin`).

A key is shown once, when it is created; Redis keeps only a keyed hash of it.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from . import routing
from .errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from .keyed import keyed
from .store import Store

SCOPES = ("feed", "scrub", "regulator", "admin")  # admin may do everything the others may
KEY_TEXT_PREFIX = "cmk_"  # tells an API key from a device token at a glance
KEY_SECRET_BYTES = 32
LAST_USED_EVERY = 60.0  # seconds: a key's last-used time is written at most this often per process
NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$"


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: str
    agency: str | None = None  # a regulator key's agency (blocklist/routing.py)

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or self.scope == scope


def _hash(store: Store, key: str) -> str:
    return keyed(store.secret, "apikey", key).hex()


def create(store: Store, name: str, scope: str, agency: str | None = None) -> str:
    """Create a key; return it (the only time it is ever shown). A regulator key names its
    agency, one of the routing table's; no other key has one."""
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}")
    if not re.match(NAME_PATTERN, name):
        raise ValidationFailed("name must be 1 to 64 letters, digits or . _ -")
    if scope == "regulator":
        agencies = routing.cached(store.config.routing_file).agencies
        if agency not in agencies:
            raise ValidationFailed(f"a regulator key needs --agency, one of: {', '.join(agencies)}"
                                   + (f" (not {agency!r})" if agency else ""))
    elif agency is not None:
        raise ValidationFailed("only a regulator key has an agency")
    key = KEY_TEXT_PREFIX + secrets.token_urlsafe(KEY_SECRET_BYTES)
    key_hash = _hash(store, key)
    record = json.dumps({"scope": scope, "created": int(time.time()), "hash": key_hash,
                         **({"agency": agency} if agency else {})})
    if not store.redis.hsetnx(store.keys.api_keys(), name, record):
        raise Conflict(f"an API key named {name!r} exists; revoke it first or choose another name")
    store.redis.set(store.keys.api_key_lookup(key_hash), name)
    return key


def list_keys(store: Store) -> list[dict]:
    records = store.redis.hgetall(store.keys.api_keys())
    used = store.redis.hgetall(store.keys.api_keys_used())
    out = []
    for name, raw in sorted(records.items()):
        record = json.loads(raw)
        out.append({"name": name, "scope": record["scope"], "agency": record.get("agency"),
                    "created": record["created"], "last_used": int(used[name]) if name in used else None})
    return out


def record(store: Store, name: str) -> dict[str, Any] | None:
    """The stored record of the key named `name` (scope, keyed hash, ...), or None."""
    raw = store.redis.hget(store.keys.api_keys(), name)
    return json.loads(raw) if raw else None


def revoke(store: Store, name: str) -> None:
    stored = record(store, name)
    if stored is None:
        raise NotFound(f"no API key named {name!r}")
    pipe = store.redis.pipeline(transaction=False)
    pipe.delete(store.keys.api_key_lookup(stored["hash"]))
    pipe.hdel(store.keys.api_keys(), name)
    pipe.hdel(store.keys.api_keys_used(), name)
    pipe.execute()
    store.auth_cache.clear()


def authenticate(store: Store, key: str | None, scope: str) -> ApiKey:
    """The API key sent as a bearer token, if it exists and carries `scope`; else 401/403."""
    if not key:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    if not key.startswith(KEY_TEXT_PREFIX):
        raise Unauthorized("this route takes an API key, not a device token")
    key_hash = _hash(store, key)
    name = store.redis.get(store.keys.api_key_lookup(key_hash))
    raw = store.redis.hget(store.keys.api_keys(), name) if name else None
    if raw is None:
        raise Unauthorized("the API key is not valid")
    stored = json.loads(raw)
    api_key = ApiKey(name, stored["scope"], stored.get("agency"))
    if not api_key.allows(scope):
        raise Forbidden(f"the API key {name!r} has scope {api_key.scope!r}; this route needs {scope!r}")
    marker = f"used:{name}"
    if store.auth_cache.get(marker, 0.0) < time.monotonic():
        store.auth_cache[marker] = time.monotonic() + LAST_USED_EVERY
        store.redis.hset(store.keys.api_keys_used(), name, int(time.time()))
    return api_key
