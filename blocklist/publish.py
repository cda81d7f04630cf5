"""Publishing: the change log becomes new, signed versions of the Bloom-filter lists.

One publisher at a time holds a Redis lock with an expiry; its fencing token travels with
every commit, and the commit (lua/commit.lua) also checks that the list is still at the
version the publish started from, so an overlapping publisher can never corrupt a list.
Everything a version needs (snapshot, deltas, manifest, signature, member set, change-log
cursor) is computed in memory and made visible by that one script, so a publisher killed
at any point leaves the previous version intact and served.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import redis
from bitarray import bitarray
from prometheus_client import Counter

from sync import bloom, delta
from sync.signing import SigningKey, iso

from . import changelog, feed, lists, metrics, reputation
from .errors import KeyChangeRefused, PublishError, SigningUnavailable
from .keyring import Keyring
from .lists import LIST_RULES
from .store import Store

log = logging.getLogger(__name__)

LOCK_POLL = 0.2  # seconds between attempts when waiting for the lock
CHANGES_PAGE = 10_000  # change-log entries read per round trip
MEMBERS_PAGE = 10_000  # members read per SSCAN step when rebuilding
NEW_GENERATION_HEADROOM = 2.0  # a new generation holds at least twice the members

SIGNING_KEY_MISSING = Counter("callmark_publish_signing_key_missing_total",
                              "Publishes refused because this process lacks the seed of the key the service signs with")


@dataclass
class Published:
    """What one publish did to one list."""

    list: str
    version: int
    generation: int
    count: int
    added: int
    removed: int
    changed_bits: int
    new_version: bool

    def line(self) -> str:
        if not self.new_version:
            return f"{self.list}: unchanged at version {self.version} ({self.count} numbers)"
        return (f"{self.list}: version {self.version} (generation {self.generation}), {self.count} numbers, "
                f"+{self.added} -{self.removed}, {self.changed_bits} bits changed")


def list_state(store: Store, name: str) -> dict[str, str]:
    return store.redis.hgetall(store.keys.list_state(name))


def manifest_of(state: dict[str, str]) -> dict[str, Any] | None:
    return json.loads(state["manifest"]) if state.get("manifest") else None


# --- the lock -------------------------------------------------------------------------

def acquire(store: Store, wait: float | None) -> tuple[str, int] | None:
    """Take the publish lock: (lock value, fencing token), or None if `wait` ran out."""
    value = secrets.token_hex(16)
    deadline = None if wait is None else time.monotonic() + wait
    while not store.redis.set(store.keys.publish_lock(), value, nx=True, ex=store.config.publish_lock_seconds):
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(LOCK_POLL)
    return value, int(store.redis.incr(store.keys.publish_fence()))


_RELEASE = """
-- KEYS[1] the lock; ARGV[1] the value this holder set. Deletes it only if still ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release(store: Store, value: str) -> None:
    store.redis.eval(_RELEASE, 1, store.keys.publish_lock(), value)


_RENEW = """
-- KEYS[1] the lock; ARGV[1] the value this holder set; ARGV[2] its new lifetime in ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class _Renewal:
    """Keeps the lock alive while its holder works, so a long publish keeps it and a killed
    publisher loses it within one lock lifetime. (If renewal fails and the lock passes to
    another publisher, the fencing token refuses this one's commit.)"""

    def __init__(self, store: Store, value: str):
        self.store, self.value = store, value
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="publish-lock", daemon=True)

    def _run(self) -> None:
        seconds = self.store.config.publish_lock_seconds
        while not self.stop.wait(seconds / 3):
            try:
                self.store.redis.eval(_RENEW, 1, self.store.keys.publish_lock(), self.value, int(seconds * 1000))
            except redis.RedisError as exc:
                log.warning("could not renew the publish lock: %s", exc.__class__.__name__)

    def __enter__(self) -> "_Renewal":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


# --- publishing -------------------------------------------------------------------------

@contextmanager
def locked(store: Store, wait: float | None) -> Iterator[int | None]:
    """Hold the publish lock, renewed, for the block: its fencing token, or None if `wait` ran out."""
    held = acquire(store, wait)
    if held is None:
        yield None
        return
    value, fence = held
    try:
        with _Renewal(store, value):
            yield fence
    finally:
        release(store, value)


def publish(store: Store, signer: SigningKey | Keyring, wait: float | None = 0.0) -> list[Published] | None:
    """Sweep decay, then publish every list; None when another publisher holds the lock.

    With a Keyring, the key is the one the service signs with as Redis says once the lock is
    held, so every publish after a promotion signs with the new key; PublishError when this
    process lacks its seed (the lists stay as they are, signed by a key phones trust).
    """
    with locked(store, wait) as fence:
        if fence is None:
            return None
        if isinstance(signer, Keyring):
            signer = _signer(signer)
        reputation.sweep(store)
        # ranges come last: they are derived from the spam list as just published
        return [_timed(store, signer, name, fence) for name in lists.PUBLISHED]


def _signer(keyring: Keyring) -> SigningKey:
    try:
        return keyring.signer()
    except SigningUnavailable as exc:
        SIGNING_KEY_MISSING.inc()
        log.error("publish refused: %s", exc)
        raise PublishError(str(exc)) from None


# --- signing-key changes that affect what a publish signs -------------------------------
# Each runs under the publish lock: a publish signs all its lists with the key of before the
# change or all with the key of after it, and a retirement sees every list as last committed.

def signed_by(store: Store, key: str) -> list[str]:
    """The published lists whose manifest the key signed."""
    return [name for name in lists.PUBLISHED if list_state(store, name).get("key_id") == key]


def promote(store: Store, keyring: Keyring, wait: float | None = None) -> SigningKey:
    """Rotation step 2: the announced key signs every publish from now on."""
    with locked(store, wait) as fence:
        if fence is None:
            raise PublishError(f"another publisher held the lock for {wait:g} s")
        return keyring.promote()


def retire(store: Store, keyring: Keyring, key: str | None = None, wait: float | None = None) -> str:
    """Rotation step 3: the current key retires `key` (default: the key it took over from) once
    no list is signed by it any more; returns the retired key's id."""
    with locked(store, wait) as fence:
        if fence is None:
            raise PublishError(f"another publisher held the lock for {wait:g} s")
        subject = key or keyring.predecessor()
        if subject is None:
            raise KeyChangeRefused("the current key took over from none: there is nothing to retire")
        keyring.check_retiring(subject)
        still = signed_by(store, subject)
        if still:
            raise KeyChangeRefused(f"key {subject} still signs {', '.join(still)}: publish first "
                                   "(`flask --app app lists publish`), then retire it")
        return keyring.retire(subject, iso(store.clock()))


def revoke(store: Store, keyring: Keyring, key: str, wait: float | None = None) -> SigningKey | None:
    """Revoke a key; returns the key promoted in place of a revoked signing key, if any.
    Publish right after: phones refuse every list the revoked key signed."""
    with locked(store, wait) as fence:
        if fence is None:
            raise PublishError(f"another publisher held the lock for {wait:g} s")
        return keyring.revoke(key, iso(store.clock()))


PUBLISHES_KEPT = 200  # recent publishes kept for operators (GET /v1/stats)


def _timed(store: Store, signer: SigningKey, name: str, fence: int) -> "Published":
    """Publish one list, timed for /metrics and, when it made a version, noted for operators."""
    started = time.perf_counter()
    result = publish_list(store, signer, name, fence)
    seconds = time.perf_counter() - started
    metrics.PUBLISH_SECONDS.labels(name).observe(seconds)
    if result.new_version:
        store.redis.xadd(store.keys.publishes(), {
            "list": name, "version": result.version, "count": result.count, "added": result.added,
            "removed": result.removed, "seconds": round(seconds, 3), "at": int(store.clock())},
            maxlen=PUBLISHES_KEPT, approximate=True)
    return result


def _pending(store: Store, name: str, cursor: str | None) -> tuple[dict[str, bool], str]:
    """Each key whose membership may have changed -> member now? And the cursor reached."""
    if name == lists.RANGES:
        return _pending_ranges(store), cursor or ""
    rule = LIST_RULES[name]
    if cursor is None:  # never published: the change log may be trimmed, so start from the numbers
        return _every_number(store, rule)
    wanted: dict[str, bool] = {}
    while True:
        changes, cursor = changelog.read(store, cursor, CHANGES_PAGE)
        for change in changes:
            wanted[change.number] = rule(change.verdict, change.label)
        if len(changes) < CHANGES_PAGE:
            return wanted, cursor


def _every_number(store: Store, rule) -> tuple[dict[str, bool], str]:
    """Every number the rule lists now, from the numbers' published states, and the change-log
    cursor taken before the scan (changes during it come at the next publish)."""
    cursor = changelog.head_cursor(store)
    wanted: dict[str, bool] = {}
    for numbers in feed.scan_numbers(store):
        pipe = store.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hget(store.keys.number(number), "v")
        for number, state in zip(numbers, pipe.execute()):
            if state and rule(*reputation.published_state(int(state))):
                wanted[number] = True
    return wanted, cursor


def _pending_ranges(store: Store) -> dict[str, bool]:
    """Every block key the range rules list now (True) or the list holds but should not (False).
    Derived from the whole spam list: a block's count needs all of its numbers."""
    wanted = dict.fromkeys(lists.ranges(_members(store, "spam")), True)
    for key in _members(store, lists.RANGES):
        wanted.setdefault(key, False)
    return wanted


def _capacity(store: Store, count: int, headroom: float) -> int:
    return max(store.config.list_min_capacity, math.ceil(count * headroom))


def _members(store: Store, name: str) -> list[str]:
    return list(store.redis.sscan_iter(store.keys.list_members(name), count=MEMBERS_PAGE))


def publish_list(store: Store, signer: SigningKey, name: str, fence: int) -> Published:
    state = list_state(store, name)
    version = int(state.get("version", 0))
    wanted, cursor = _pending(store, name, state.get("cursor"))
    candidates = list(wanted)
    flags = store.redis.smismember(store.keys.list_members(name), candidates) if candidates else []
    adds = [n for n, is_member in zip(candidates, flags) if wanted[n] and not is_member]
    removes = [n for n, is_member in zip(candidates, flags) if not wanted[n] and is_member]
    count = int(state.get("count", 0)) + len(adds) - len(removes)
    resign = bool(state) and state.get("key_id") != signer.key_id
    if state and not adds and not removes and not resign:
        if cursor != state.get("cursor"):
            _commit(store, name, fence, version, {"cursor": cursor}, b"", [], [], {}, [])
        return Published(name, version, int(state["generation"]), count, 0, 0, 0, False)

    error_rate = float(state.get("error_rate", store.config.list_error_rate))
    capacity = int(state.get("capacity", 0))
    generation = int(state.get("generation", 0))
    old_bits = None
    if state and count <= capacity:
        old = bloom.parse_snapshot(store.binary.get(store.keys.list_snapshot(name)) or b"")
        old_bits = old.bits
    if old_bits is None:  # first version, or the list outgrew its filter: a new generation
        generation += 1
        headroom = store.config.list_headroom if not state else max(store.config.list_headroom,
                                                                    NEW_GENERATION_HEADROOM)
        capacity = _capacity(store, count, headroom)
        error_rate = store.config.list_error_rate
        geom = bloom.geometry(capacity, error_rate)
        members = (set(_members(store, name)) | set(adds)) - set(removes)
        bits = bloom.build_bits(sorted(members), geom)
    elif removes:  # a Bloom filter cannot forget: rebuild from the members
        geom = bloom.geometry(capacity, error_rate)
        members = (set(_members(store, name)) | set(adds)) - set(removes)
        bits = bloom.build_bits(sorted(members), geom)
    else:  # additions only: set their bits, cost proportional to the change
        geom = bloom.geometry(capacity, error_rate)
        bits = bitarray(old_bits)
        bloom.add_keys(bits, adds, geom)

    snapshot = bloom.snapshot_bytes(bits, error_rate=error_rate, capacity=capacity, count=count)
    digest = hashlib.sha256(snapshot).digest()
    now = store.clock()
    new_version = version + 1
    history = _history(state, generation, now, store)
    step = delta.diff_positions(old_bits, bits) if old_bits is not None else None  # bits this version flips
    deltas = _deltas(store, name, history, step, new_version, digest, geom)
    for body in deltas.values():
        metrics.DELTA_BYTES.labels(name).observe(len(body))
    dropped = [store.keys.list_delta(name, v) for v, _ in json.loads(state.get("history", "[]"))
               if store.keys.list_delta(name, v) not in deltas]
    manifest = {
        "list": name,
        "version": new_version,
        "generation": generation,
        "error_rate": error_rate,
        "capacity": capacity,
        "count": count,
        "num_slices": geom.num_slices,
        "bits_per_slice": geom.bits_per_slice,
        "sha256": digest.hex(),
        "snapshot_bytes": len(snapshot),
        "published_at": iso(now),
        "key_id": signer.key_id,
    }
    fields = {
        "version": new_version, "generation": generation, "capacity": capacity, "count": count,
        "error_rate": repr(error_rate), "num_slices": geom.num_slices, "bits_per_slice": geom.bits_per_slice,
        "sha256": digest.hex(), "snapshot_bytes": len(snapshot), "published_at": int(now),
        "key_id": signer.key_id, "manifest": json.dumps(manifest, sort_keys=True, separators=(",", ":")),
        "signature": signer.sign(manifest), "cursor": cursor,
        "history": json.dumps(history + [[new_version, int(now)]]),
    }
    changed_bits = len(step) if step is not None else 0
    _commit(store, name, fence, version, fields, snapshot, adds, removes, deltas, dropped)
    return Published(name, new_version, generation, count, len(adds), len(removes), changed_bits, True)


def _history(state: dict[str, str], generation: int, now: float, store: Store) -> list[list[int]]:
    """The versions of this generation that deltas may still start from: [version, published].

    A version is kept while it was the latest within the retention: a phone holding the
    version this publish replaces is current, however long ago that version was published.
    """
    if not state or int(state.get("generation", 0)) != generation:
        return []
    oldest = now - store.config.delta_retention_days * 86400
    history = json.loads(state.get("history", "[]"))
    replaced_at = [published for _, published in history[1:]] + [now]
    kept = [v for v, until in zip(history, replaced_at) if until >= oldest]
    return kept[-store.config.delta_retention:]


def _deltas(store: Store, name: str, history: list[list[int]], step: np.ndarray | None, to_version: int,
            digest: bytes, geom: bloom.Geometry) -> dict[str, bytes]:
    """Encoded deltas from every retained version to the new one, by key.

    delta(a -> new) = delta(a -> previous) XOR delta(previous -> new), so each publish costs
    the size of the retained deltas, never a rebuild, and serving one is a single GET.
    """
    keys = store.keys
    if step is None:  # new generation: nothing older can be patched
        return {}
    previous = to_version - 1
    older = [keys.list_delta(name, v) for v, _ in history if v != previous]
    stored = store.binary.mget(older) if older else []
    out: dict[str, bytes] = {}
    bodies = iter(stored)
    for v, _ in history:
        if v == previous:
            positions = step
        else:
            body = next(bodies)
            if body is None:
                continue  # expired or lost: that version gets a 410 and takes the snapshot
            positions = np.setxor1d(delta.decode(body)[1], step, assume_unique=True)
        out[keys.list_delta(name, v)] = delta.encode(positions, list_name=name, from_version=v,
                                                     to_version=to_version, num_bits=geom.num_bits,
                                                     snapshot_sha256=digest)
    return out


def _commit(store: Store, name: str, fence: int, started_from: int, fields: dict[str, Any], snapshot: bytes,
            adds: list[str], removes: list[str], deltas: dict[str, bytes], dropped: list[str]) -> None:
    keys = store.keys
    script = store.script("blocklist", "commit.lua")
    try:
        script(
            keys=[keys.list_state(name), keys.list_snapshot(name), keys.list_members(name), *deltas, *dropped],
            args=[fence, started_from, json.dumps({k: str(v) for k, v in fields.items()}), snapshot,
                  len(adds), len(removes), len(deltas), *adds, *removes, *deltas.values()],
        )
    except redis.ResponseError as exc:
        if str(exc).startswith("STALE"):
            raise PublishError(f"{name}: {exc}") from None
        raise
