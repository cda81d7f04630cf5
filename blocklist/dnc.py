"""Do-Not-Call registry: people say which marketing calls they refuse, telemarketers scrub
their lists against it, and the registry never holds a registrant's number in clear.

A registration is named by a keyed hash of its number (`keyed(secret, "dnc", number)`): its
first 14 bits choose one of 16,384 small hashes (a bucket), the next 42 bits are the field,
and the value packs the preferences, a keyed tag of the owning device, the dates and the
number's region and time zone into 17 characters (docs/STORAGE.md, "Do-Not-Call registry").
The rare accept windows and consents sit in per-group hashes beside it, under the same hash
tag. The only copy of a number is the device's own, AES-GCM encrypted (key derived from the
service secret with HKDF) in the device's Do-Not-Call record, so that it can list it; it goes
with the registration or the device.
"""
from __future__ import annotations

import base64
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Protocol
from zoneinfo import ZoneInfo

import phonenumbers
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers import phonenumberutil as _pnu
from phonenumbers import timezone as phone_timezones

from sync.signing import iso

from . import dnc_stats, tags
from .errors import (InvalidNumber, NotRegistered, Unauthorized, UnknownConsent, ValidationFailed,
                     VerificationFailed)
from .config import Config
from .keyed import keyed
from .numbers import normalize
from .store import Store

MARKETING = tags.MARKETING
_BIT = {code: 1 << i for i, code in enumerate(MARKETING)}  # a category's bit: its place in MARKETING
ALL_MARKETING = (1 << len(MARKETING)) - 1
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # a window's days; datetime.weekday() order

CODE_DIGITS = 6
CODE_SECONDS = 600  # a verification code expires 10 minutes after it was sent
CODE_ATTEMPTS = 5  # wrong codes a verification allows before it is used up
MAX_WINDOWS = 8  # accept windows per registration
MAX_ORGANIZATION = 200  # characters of a consent's organisation

# Where a registration lives: the first CALLMARK_DNC_BUCKET_BITS (config.dnc_bucket_bits) of
# its keyed hash choose the bucket (a hash), the next FIELD_CHARS * 7 bits its field. The
# default 14 bits make 16,384 buckets of ~61 registrations each at 1,000,000; the fullest of
# them stays below Redis's 128-entry limit for the compact listpack encoding up to about 1.4
# million registrations (an average of ~89 a bucket). A larger registry needs more bucket
# bits (22 for 258 million, good to ~330 million: docs/DEPLOY.md); they are fixed for the
# life of a deployment. BUCKET_BITS: the setting's default.
BUCKET_BITS = Config.dnc_bucket_bits
GROUP_SHIFT = 6  # 64 buckets per group (hash tag): 256 groups, one lookup script per group
FIELD_CHARS = 6  # 42 bits: with the bucket, 56 bits of the keyed hash name a registration
# The packed record (low bits first): preferences, region, zone, registered, verified, device.
PREFS_BITS = 12  # bit 0 refuses all, bits 1-10 the refused categories (MARKETING order), bit 11 has windows
REGION_BITS = 10  # two letters, 5 bits each (A = 1); 0 for a non-geographic number
ZONE_BITS = 10  # the deployment's index of the number's time zone (dnc_zone.lua); 0 unknown: UTC
MINUTE_BITS = 25  # minutes since EPOCH: to the year 2083
DEVICE_BITS = 32  # keyed tag of the owning device
RECORD_CHARS = 17  # 7 bits a character (ASCII, so any client reads it as text): 119 bits, 5 spare
EPOCH = 1577836800  # 2020-01-01T00:00:00Z
WINDOWS_FLAG = 1 << 11
REFUSE_ALL_FLAG = 1

SCRUB_BATCH = 4096  # numbers per lookup round trip: memory stays constant over any stream
QUOTA_KEEP_SECONDS = 2 * 86400
RECEIPTS_KEPT = 10_000  # per scrub key, newest; older receipts are trimmed
RECEIPTS_LISTED = 1000
TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class _Device(Protocol):
    id: str


# --- the keyed hash and where it points ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Place:
    """Where one number's registration, windows and consents are."""

    group: int
    bucket: int
    field: str  # FIELD_CHARS characters of 7 bits
    name: str  # `<bucket>.<field hex>`: the registration in the windows, consents and device records


def _place_of_digest(digest: bytes, bucket_bits: int = BUCKET_BITS) -> Place:
    head = int.from_bytes(digest[:8], "big")
    bucket = head >> (64 - bucket_bits)
    bits = (head >> (64 - bucket_bits - 7 * FIELD_CHARS)) & ((1 << (7 * FIELD_CHARS)) - 1)
    return Place(bucket >> GROUP_SHIFT, bucket, _chars(bits, FIELD_CHARS), f"{bucket}.{bits:x}")


def _place_of_name(name: str) -> Place:
    bucket, bits = name.split(".")
    return Place(int(bucket) >> GROUP_SHIFT, int(bucket), _chars(int(bits, 16), FIELD_CHARS), name)


def place(store: Store, number: str) -> Place:
    """The place of an E.164 number's registration: from `keyed(secret, "dnc", number)`."""
    return _place_of_digest(keyed(store.secret, "dnc", number), store.config.dnc_bucket_bits)


def _chars(value: int, count: int) -> str:
    return "".join(chr((value >> (7 * i)) & 127) for i in range(count))


def _unchars(text: str) -> int:
    value = 0
    for i, char in enumerate(text.encode("ascii")):
        value |= char << (7 * i)
    return value


def device_tag(store: Store, device_id: str) -> int:
    """The keyed tag a registration names its device by."""
    return int.from_bytes(keyed(store.secret, "dnc-device", device_id)[:DEVICE_BITS // 8], "big")


def organization_key(store: Store, organization: str) -> str:
    """A keyed hash of an organisation's name after NFKC and case folding (how consents match)."""
    folded = unicodedata.normalize("NFKC", organization).casefold().strip()
    return keyed(store.secret, "dnc-org", folded).hex()[:16]


# --- the packed record -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Record:
    prefs: int
    region: str  # "" for a non-geographic number
    zone: int
    registered: int  # unix seconds (whole minutes)
    verified: int
    device: int  # device_tag of the owner

    def pack(self) -> str:
        value = self.prefs
        value |= _region_code(self.region) << PREFS_BITS
        value |= self.zone << (PREFS_BITS + REGION_BITS)
        shift = PREFS_BITS + REGION_BITS + ZONE_BITS
        value |= ((self.registered - EPOCH) // 60) << shift
        value |= ((self.verified - EPOCH) // 60) << (shift + MINUTE_BITS)
        value |= self.device << (shift + 2 * MINUTE_BITS)
        return _chars(value, RECORD_CHARS)

    @classmethod
    def unpack(cls, text: str) -> "Record":
        value = _unchars(text)
        shift = PREFS_BITS + REGION_BITS + ZONE_BITS
        minutes = (1 << MINUTE_BITS) - 1
        return cls(
            prefs=value & ((1 << PREFS_BITS) - 1),
            region=_region_name((value >> PREFS_BITS) & ((1 << REGION_BITS) - 1)),
            zone=(value >> (PREFS_BITS + REGION_BITS)) & ((1 << ZONE_BITS) - 1),
            registered=EPOCH + 60 * ((value >> shift) & minutes),
            verified=EPOCH + 60 * ((value >> (shift + MINUTE_BITS)) & minutes),
            device=(value >> (shift + 2 * MINUTE_BITS)) & ((1 << DEVICE_BITS) - 1),
        )

    @property
    def refused(self) -> int:
        """The refused categories' bits."""
        return ALL_MARKETING if self.prefs & REFUSE_ALL_FLAG else (self.prefs >> 1) & ALL_MARKETING

    def refused_categories(self) -> list[str]:
        """The refused marketing tags, in MARKETING's order."""
        bits = self.refused
        return [code for code in MARKETING if bits & _BIT[code]]

    @property
    def has_windows(self) -> bool:
        return bool(self.prefs & WINDOWS_FLAG)

    def expires(self, store: Store) -> int:
        return self.verified + store.config.dnc_reverify_days * 86400

    def live(self, store: Store, now: float) -> bool:
        return now < self.expires(store)


def _region_code(region: str) -> int:
    if len(region) != 2 or not region.isalpha():
        return 0
    return (ord(region[0].upper()) - 64) << 5 | (ord(region[1].upper()) - 64)


def _region_name(code: int) -> str:
    return chr(64 + (code >> 5)) + chr(64 + (code & 31)) if code else ""


def _minute(now: float) -> int:
    return int(now) // 60 * 60


# --- preferences -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    days: int  # bit i: DAYS[i]
    start: int  # minutes after local midnight
    end: int  # minutes after local midnight, 1440 for 24:00; at or before start: the next day
    categories: int  # the refused categories it makes callable

    def covers(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return bool(self.days >> weekday & 1) and self.start <= minute < self.end
        # across midnight (or 24 hours when start == end): from `start` on a listed day to
        # `end` the next day
        return (bool(self.days >> weekday & 1) and minute >= self.start) or \
            (bool(self.days >> ((weekday - 1) % 7) & 1) and minute < self.end)

    def text(self) -> str:
        return f"{self.days:x}.{self.start}.{self.end}.{self.categories:x}"

    @classmethod
    def parse(cls, text: str) -> "Window":
        days, start, end, categories = text.split(".")
        return cls(int(days, 16), int(start), int(end), int(categories, 16))

    def describe(self) -> dict:
        return {"days": [day for i, day in enumerate(DAYS) if self.days >> i & 1],
                "from": _hhmm(self.start), "to": _hhmm(self.end), "categories": _codes(self.categories)}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _codes(bits: int) -> list[str]:
    return [code for code in MARKETING if bits & _BIT[code]]


def _categories(value: Any, what: str, allow_empty: bool = False) -> int:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ValidationFailed(f"{what} must be a list of marketing tags", {"marketing": list(MARKETING)})
    bits = 0
    for code in value:
        if code not in _BIT:
            raise ValidationFailed(f"{code!r} is not a marketing tag; {what} takes only marketing tags",
                                   {"tag": str(code), "marketing": list(MARKETING)})
        bits |= _BIT[code]
    return bits


def _minutes(value: Any, what: str, end: bool) -> int:
    match = TIME.match(value) if isinstance(value, str) else None
    if not match or (value == "24:00" and not end):
        raise ValidationFailed(f"{what} must be a time HH:MM" + (" (24:00 for the end of the day)" if end else ""))
    return 1440 if value == "24:00" else int(match.group(1)) * 60 + int(match.group(2))


def check_preferences(preferences: Any) -> tuple[int, list[Window]]:
    """The packed preference bits (without the windows flag) and the windows; ValidationFailed
    when they are not `{"refuse": "all" | [marketing tags], "accept_windows": [...]}`."""
    if not isinstance(preferences, dict) or set(preferences) - {"refuse", "accept_windows"}:
        raise ValidationFailed("preferences must be {\"refuse\": ..., \"accept_windows\": [...]}")
    refuse = preferences.get("refuse")
    prefs = REFUSE_ALL_FLAG if refuse == "all" else _categories(refuse, "refuse") << 1
    raw_windows = preferences.get("accept_windows") or []
    if not isinstance(raw_windows, list) or len(raw_windows) > MAX_WINDOWS:
        raise ValidationFailed(f"accept_windows must be a list of at most {MAX_WINDOWS} windows")
    windows = []
    for raw in raw_windows:
        if not isinstance(raw, dict) or set(raw) - {"days", "from", "to", "categories"}:
            raise ValidationFailed("a window is {\"days\", \"from\", \"to\", \"categories\"}")
        days = raw.get("days")
        if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
            raise ValidationFailed(f"a window's days must be a list of {', '.join(DAYS)}")
        categories = _categories(raw.get("categories", []), "a window's categories", allow_empty=True)
        windows.append(Window(sum(1 << DAYS.index(day) for day in set(days)),
                              _minutes(raw.get("from"), "a window's from", end=False),
                              _minutes(raw.get("to"), "a window's to", end=True),
                              categories or ALL_MARKETING))
    return prefs, windows


def _describe_preferences(prefs: int, windows: list[Window]) -> dict:
    refuse: str | list[str] = "all" if prefs & REFUSE_ALL_FLAG else _codes(prefs >> 1)
    return {"refuse": refuse, "accept_windows": [window.describe() for window in windows]}


def _windows_text(windows: list[Window]) -> str:
    return ",".join(window.text() for window in windows)


def _parse_windows(text: str | None) -> list[Window]:
    return [Window.parse(part) for part in text.split(",")] if text else []


# --- encryption of the device's own numbers ----------------------------------------------------

@lru_cache(maxsize=8)
def _aead(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"callmark dnc numbers").derive(secret)
    return AESGCM(key)


def seal(store: Store, where: str, text: str) -> str:
    """AES-GCM of `text`, bound to `where` (its record and field) as associated data."""
    nonce = os.urandom(12)
    sealed = _aead(store.secret).encrypt(nonce, text.encode(), where.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(store: Store, where: str, token: str) -> str:
    raw = base64.b64decode(token)
    return _aead(store.secret).decrypt(raw[:12], raw[12:], where.encode()).decode()


# --- time zones --------------------------------------------------------------------------------

def _region_and_zone(number: str) -> tuple[str, str]:
    """The number's region (`CN`; "" when non-geographic) and its first time zone ("" unknown)."""
    parsed = phonenumbers.parse(number)
    region = phonenumbers.region_code_for_number(parsed) or ""
    zones = [zone for zone in phone_timezones.time_zones_for_number(parsed) if zone != "Etc/Unknown"]
    return (region if len(region) == 2 else ""), (zones[0] if zones else "")


def _zone_index(store: Store, name: str) -> int:
    if not name:
        return 0
    marker = f"dnc-zone:{name}"
    if marker not in store.auth_cache:
        store.auth_cache[marker] = int(store.script("blocklist", "dnc_zone.lua")(
            keys=[store.keys.dnc_zones()], args=[name]))
    return store.auth_cache[marker]


def _zone_name(store: Store, index: int) -> str:
    marker = f"dnc-zone#{index}"
    if marker not in store.auth_cache:
        store.auth_cache[marker] = store.redis.hget(store.keys.dnc_zones(), f"#{index}") or ""
    return store.auth_cache[marker]


@lru_cache(maxsize=1024)
def _zoneinfo(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local_time(store: Store, record: Record, at: float) -> tuple[int, int]:
    """(weekday, minute after midnight) of `at` in the number's time zone."""
    local = datetime.fromtimestamp(at, _zoneinfo(_zone_name(store, record.zone) if record.zone else ""))
    return local.weekday(), local.hour * 60 + local.minute


# --- verification and registration ---------------------------------------------------------------

def _code_hash(store: Store, verification_id: str, code: str) -> str:
    return keyed(store.secret, "dnc-code", f"{verification_id}:{code}").hex()[:32]


def start_verification(store: Store, device: _Device, number: str, send: Callable[[str, str], None]) -> dict:
    """Send a 6-digit code to `number` (E.164); keep only its keyed hash and the number encrypted.

    The sender's errors pass unchanged, and then nothing is kept."""
    verification_id = secrets.token_urlsafe(12)
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    region, zone = _region_and_zone(number)
    expires = int(store.clock()) + CODE_SECONDS
    key = store.keys.dnc_verification(verification_id)
    record = {"d": device.id, "c": _code_hash(store, verification_id, code), "a": CODE_ATTEMPTS, "x": expires,
              "e": seal(store, key, number), "r": region, "z": zone}
    store.pipelined(lambda pipe: [pipe.hset(key, mapping=record), pipe.expire(key, CODE_SECONDS)])
    try:
        send(number, f"CallMark Do-Not-Call code: {code}. It expires in {CODE_SECONDS // 60} minutes. "
                     "If you did not ask for it, ignore this message.")
    except BaseException:
        store.redis.delete(key)
        raise
    return {"verification_id": verification_id, "expires_at": iso(expires)}


def _check_code(store: Store, device_id: str, verification_id: str, code: Any) -> tuple[str, str, str]:
    """The number, region and zone a right code proves; VerificationFailed otherwise."""
    if not isinstance(verification_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", verification_id):
        raise VerificationFailed("no such verification: start one with POST /v1/dnc/verifications")
    if not isinstance(code, str) or not re.fullmatch(rf"\d{{{CODE_DIGITS}}}", code):
        raise VerificationFailed(f"the code is {CODE_DIGITS} digits")
    key = store.keys.dnc_verification(verification_id)
    reply = store.script("blocklist", "dnc_verify.lua")(
        keys=[key], args=[device_id, _code_hash(store, verification_id, code), int(store.clock())])
    outcome = reply[0]
    if outcome == "ok":
        return unseal(store, key, reply[1]), reply[2] or "", reply[3] or ""
    messages = {
        "unknown": "no such verification for this device: start one with POST /v1/dnc/verifications",
        "expired": f"the code has expired ({CODE_SECONDS // 60} minutes): ask for a new one",
        "exhausted": f"{CODE_ATTEMPTS} wrong codes: this verification is used up; ask for a new one",
    }
    if outcome == "wrong":
        raise VerificationFailed("the code is wrong", {"attempts_left": int(reply[1])})
    raise VerificationFailed(messages[outcome], {"reason": outcome})


def _cas(store: Store, where: Place, expected: str | None, new: str | None, windows: str | None = None) -> bool:
    """Replace the registration at `where` if it is still `expected`; with it set (or, given
    "", delete) its windows. None leaves the windows alone."""
    keys = [store.keys.dnc_registrations(where.group, where.bucket)]
    args = [where.field, expected or "", new or ""]
    if windows is not None:
        keys.append(store.keys.dnc_windows(where.group))
        args += [where.name, windows]
    return bool(store.script("blocklist", "dnc_cas.lua")(keys=keys, args=args))


def _note(store: Store, device_id: str, field: str, value: str, read: Place | None = None) -> str | None:
    """Note `value` under `field` in the device's Do-Not-Call record, only while the device
    exists; with `read`, in the same round trip, the registration there as it was (raw)."""
    note = store.script("blocklist", "device_field.lua")
    keys = [store.keys.device(device_id), store.keys.dnc_device(device_id)]

    def fill(pipe) -> None:
        store.evalsha(pipe, note, keys, [field, value])
        if read is not None:
            pipe.hget(store.keys.dnc_registrations(read.group, read.bucket), read.field)

    noted, *raw = store.pipelined(fill)
    if not noted:
        raise Unauthorized("the device token is not valid")
    return raw[0] if raw else None


def _answer(store: Store, number: str, record: Record, windows: list[Window]) -> dict:
    return {
        "number": number,
        "registered_at": iso(record.registered),
        "effective_at": iso(record.registered + store.config.dnc_grace_days * 86400),
        "expires_at": iso(record.expires(store)),
        "preferences": _describe_preferences(record.prefs, windows),
    }


def _read(store: Store, where: Place) -> tuple[str | None, Record | None]:
    raw = store.redis.hget(store.keys.dnc_registrations(where.group, where.bucket), where.field)
    return raw, Record.unpack(raw) if raw is not None else None


def register(store: Store, device: _Device, verification_id: str, code: str, preferences: Any) -> dict:
    """Register (or re-verify) the number a verification proves, for `device`.

    A live registration keeps its registration date and gets a new expiry; one of another
    device moves to this one (a phone replaced); an expired one starts afresh.
    `effective_at`: when calls ignoring it count as violations (CALLMARK_DNC_GRACE_DAYS); the
    scrub applies it at once."""
    prefs, windows = check_preferences(preferences)
    number, region, zone = _check_code(store, device.id, verification_id, code)
    where = place(store, number)
    zone_index = _zone_index(store, zone)
    device_key = store.keys.dnc_device(device.id)
    raw = _note(store, device.id, f"r{where.name}", seal(store, f"{device_key}:r{where.name}", number), read=where)
    now = _minute(store.clock())
    tag = device_tag(store, device.id)
    while True:
        current = Record.unpack(raw) if raw is not None else None
        registered = current.registered if current is not None and current.live(store, now) else now
        record = Record(prefs | (WINDOWS_FLAG if windows else 0), region, zone_index, registered, now, tag)
        if _cas(store, where, raw, record.pack(), _windows_text(windows)):
            dnc_stats.registered(store, current if current is not None and current.live(store, now) else None, record)
            return _answer(store, number, record, windows)
        raw, _ = _read(store, where)


def _owned(store: Store, device_id: str, number: str) -> tuple[Place, str, Record]:
    where = place(store, number)
    raw, record = _read(store, where)
    if record is None or record.device != device_tag(store, device_id) or not record.live(store, store.clock()):
        raise NotRegistered(f"this device has no Do-Not-Call registration of {number}")
    return where, raw, record  # type: ignore[return-value]


def _device_records(store: Store, device_id: str) -> dict[str, str]:
    return store.redis.hgetall(store.keys.dnc_device(device_id))


def registrations_of(store: Store, device_id: str) -> list[dict]:
    """The device's live registrations, as `register` answers them."""
    device_key = store.keys.dnc_device(device_id)
    numbers = [unseal(store, f"{device_key}:{field}", value)
               for field, value in _device_records(store, device_id).items() if field.startswith("r")]
    if not numbers:
        return []
    places = [place(store, number) for number in numbers]
    replies = store.pipelined(lambda pipe: [
        (pipe.hget(store.keys.dnc_registrations(where.group, where.bucket), where.field),
         pipe.hget(store.keys.dnc_windows(where.group), where.name)) for where in places])
    tag, now, out = device_tag(store, device_id), store.clock(), []
    for number, raw, windows in zip(numbers, replies[0::2], replies[1::2]):
        record = Record.unpack(raw) if raw is not None else None
        if record is not None and record.device == tag and record.live(store, now):
            out.append(_answer(store, number, record, _parse_windows(windows)))
    return sorted(out, key=lambda answer: answer["number"])


def update(store: Store, device_id: str, number: str, preferences: Any) -> dict:
    """Change the preferences of the device's registration of `number`; at once for the scrub."""
    prefs, windows = check_preferences(preferences)
    while True:
        where, raw, record = _owned(store, device_id, number)
        new = Record(prefs | (WINDOWS_FLAG if windows else 0), record.region, record.zone, record.registered,
                     record.verified, record.device)
        if _cas(store, where, raw, new.pack(), _windows_text(windows)):
            dnc_stats.updated(store, record, new)
            return _answer(store, number, new, windows)


def remove(store: Store, device_id: str, number: str) -> None:
    """Remove the device's registration of `number`, its windows and the device's consents for it."""
    while True:
        where, raw, old = _owned(store, device_id, number)
        if _cas(store, where, raw, None, ""):
            dnc_stats.removed(store, old)
            break
    device_key = store.keys.dnc_device(device_id)
    for field, value in _device_records(store, device_id).items():
        if field.startswith("c") and json.loads(unseal(store, f"{device_key}:{field}", value))["n"] == number:
            _drop_consent(store, device_id, field[1:], value)
    store.redis.hdel(device_key, f"r{where.name}")


# --- consents ----------------------------------------------------------------------------------

def add_consent(store: Store, device_id: str, number: str, organization: str, categories: Any) -> dict:
    """Record that the registrant of `number` agrees to calls from `organization` (a scrub
    key's name, matched after NFKC and case folding) in `categories`; replaces an earlier one."""
    if not isinstance(organization, str) or not organization.strip() or len(organization) > MAX_ORGANIZATION:
        raise ValidationFailed(f"organization must be a name of 1 to {MAX_ORGANIZATION} characters")
    bits = _categories(categories, "categories")
    where, _, record = _owned(store, device_id, number)
    org = organization_key(store, organization)
    device_key = store.keys.dnc_device(device_id)
    for field, value in _device_records(store, device_id).items():
        if field.startswith("c"):
            earlier = json.loads(unseal(store, f"{device_key}:{field}", value))
            if earlier["n"] == number and organization_key(store, earlier["o"]) == org:
                _drop_consent(store, device_id, field[1:], value)
    consent_id = secrets.token_hex(8)
    created = int(store.clock())
    field = f"c{consent_id}"
    _note(store, device_id, field, seal(store, f"{device_key}:{field}", json.dumps(
        {"n": number, "o": organization, "k": _codes(bits), "t": created})))
    store.redis.hset(store.keys.dnc_consents(where.group), f"{where.name}.{org}",
                     f"{record.device:x}.{bits:x}.{created}.{consent_id}")
    return {"consent_id": consent_id, "number": number, "organization": organization,
            "categories": _codes(bits), "created_at": iso(created)}


def consents_of(store: Store, device_id: str) -> list[dict]:
    """The device's consents, oldest first."""
    device_key, out = store.keys.dnc_device(device_id), []
    for field, value in _device_records(store, device_id).items():
        if field.startswith("c"):
            consent = json.loads(unseal(store, f"{device_key}:{field}", value))
            out.append({"consent_id": field[1:], "number": consent["n"], "organization": consent["o"],
                        "categories": consent["k"], "created_at": iso(consent["t"])})
    return sorted(out, key=lambda consent: (consent["created_at"], consent["consent_id"]))


def _drop_consent(store: Store, device_id: str, consent_id: str, sealed: str) -> None:
    device_key = store.keys.dnc_device(device_id)
    consent = json.loads(unseal(store, f"{device_key}:c{consent_id}", sealed))
    where = place(store, consent["n"])
    key = store.keys.dnc_consents(where.group)
    field = f"{where.name}.{organization_key(store, consent['o'])}"
    while True:
        current = store.redis.hget(key, field)
        if current is None or current.rsplit(".", 1)[1] != consent_id:
            break  # replaced by a newer consent: that one stays
        if _cas_field(store, key, field, current):
            break
    store.redis.hdel(device_key, f"c{consent_id}")


def _cas_field(store: Store, key: str, field: str, expected: str) -> bool:
    return bool(store.script("blocklist", "dnc_cas.lua")(keys=[key], args=[field, expected, ""]))


def withdraw_consent(store: Store, device_id: str, consent_id: str) -> None:
    """Withdraw one of the device's consents; at once for the scrub."""
    sealed = store.redis.hget(store.keys.dnc_device(device_id), f"c{consent_id}") \
        if isinstance(consent_id, str) and re.fullmatch(r"[0-9a-f]{16}", consent_id) else None
    if sealed is None:
        raise UnknownConsent(f"this device has no consent {consent_id!r}")
    _drop_consent(store, device_id, consent_id, sealed)


# --- erasure -----------------------------------------------------------------------------------

def erase_device(store: Store, device_id: str) -> None:
    """Forget the device's registrations (those it still owns), its consents and its numbers."""
    device_key = store.keys.dnc_device(device_id)
    records = _device_records(store, device_id)
    tag = device_tag(store, device_id)
    for field, value in records.items():
        if field.startswith("c"):
            try:
                _drop_consent(store, device_id, field[1:], value)
            except InvalidTag:  # sealed under another secret: it names nothing this one can find
                pass
        elif field.startswith("r"):
            where = _place_of_name(field[1:])
            while True:
                raw, record = _read(store, where)
                if record is None or record.device != tag:
                    break
                if _cas(store, where, raw, None, ""):
                    dnc_stats.removed(store, record)
                    break
    store.redis.delete(device_key)


# --- the scrub ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Query:
    organization: str  # organization_key
    category: int  # the category's bit
    call_at: float
    now: float


def scrub(store: Store, organization: str, category: str, call_at: float,
          numbers: Iterable[str]) -> Iterator[tuple[str, bool, str]]:
    """For each line of `numbers`, in order: (the E.164 number, or the line as given when it is
    not a number; callable; reason), reason one of "registered", "category",
    "outside_window", "consent", "invalid_number" or "". Lookups go SCRUB_BATCH numbers a round
    trip, so any stream runs in constant memory."""
    if category not in _BIT:
        raise ValidationFailed(f"category must be a marketing tag, not {category!r}", {"marketing": list(MARKETING)})
    query = _Query(organization_key(store, organization), _BIT[category], call_at, store.clock())
    reader = _Reader(store.secret, store.config.default_region)
    lines = iter(numbers)
    while batch := list(islice(lines, SCRUB_BATCH)):
        yield from _scrub_batch(store, query, reader, batch)


_E164_SHAPE = re.compile(r"\+[1-9][0-9]{5,15}")
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")  # every type _number_type_helper tells apart from UNKNOWN


def fast_e164(text: str) -> str | None:
    """`text` (already "+" and digits) in E.164 when phonenumbers finds it valid, exactly as
    `normalize` would answer; None when only `normalize` can tell.

    The scrub's fast path: a list in E.164 skips `phonenumbers.parse`'s reading of free text
    (extensions, punctuation, international prefixes), which is most of its cost, and the
    validity check runs on patterns compiled once per country (`_country`). The steps are
    parse's and is_valid_number's own for a number after a "+"; where one of them would change
    the number (a national prefix to strip) or the number is not valid, `normalize` decides
    (tests/test_dnc.py compares the two over many numbers). A valid number's E.164 form is
    the text itself: the country code has no leading zero and the national significant number
    keeps the national part's leading zeros."""
    head = _calling_code(text[1:4])
    if head is None:
        return None
    country = _country(head[0])
    national = text[1 + head[1]:]
    if country is None or len(national) < 2:
        return None
    if country.prefix is not None and country.prefix.match(national) and \
            _pnu._maybe_strip_national_prefix_carrier_code(national, country.metadata)[1] != national:
        return None
    return text if country.valid(national) else None


@lru_cache(maxsize=None)
def _calling_code(first: str) -> tuple[int, int] | None:
    """(country calling code, its digits) for a number whose first three digits are `first`:
    `_pnu._extract_country_code`'s answer, which looks at no more than those."""
    country_code, rest = _pnu._extract_country_code(first)
    return (country_code, len(first) - len(rest)) if country_code else None


class _Patterns:
    """One region's `_number_type_helper(n, metadata) != UNKNOWN`, compiled: the general
    description and, per length, the alternation of the type descriptions allowing it."""

    def __init__(self, metadata: PhoneMetadata):
        general = metadata.general_desc
        self.general_lengths = frozenset(general.possible_length or ()) if general else frozenset()
        self.general = re.compile(general.national_number_pattern) \
            if general is not None and general.national_number_pattern else None
        self.descs = [desc for desc in (getattr(metadata, name) for name in _TYPES)
                      if desc is not None and desc.national_number_pattern]
        self.by_length: dict[int, re.Pattern | None] = {}

    def known(self, national: str) -> bool:
        length = len(national)
        if self.general is None or (self.general_lengths and length not in self.general_lengths) \
                or not self.general.fullmatch(national):
            return False
        pattern = self.by_length.get(length, False)
        if pattern is False:
            parts = [desc.national_number_pattern for desc in self.descs
                     if not desc.possible_length or length in desc.possible_length]
            pattern = self.by_length[length] = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None
        return pattern is not None and pattern.fullmatch(national) is not None


class _Country:
    """A calling code's national-prefix check and validity (`is_valid_number`), compiled once."""

    def __init__(self, country_code: int, metadata: PhoneMetadata):
        self.metadata = metadata
        prefix = metadata.national_prefix_for_parsing
        self.prefix = re.compile(prefix) if prefix else None  # no match: parse strips nothing
        self.regions = []  # (leading digits, patterns of the region, valid region)
        for region in _pnu.COUNTRY_CODE_TO_REGION_CODE[country_code]:
            own = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
            listed = PhoneMetadata.metadata_for_region(region.upper(), None)
            valid = own is not None and (region == _pnu.REGION_CODE_FOR_NON_GEO_ENTITY or
                                         country_code == _pnu.country_code_for_valid_region(region))
            self.regions.append((listed, re.compile(listed.leading_digits) if listed and listed.leading_digits
                                 else None, _Patterns(listed) if listed else None, _Patterns(own) if valid else None))
        self.single = len(self.regions) == 1

    def valid(self, national: str) -> bool:
        if self.single:  # region_code_for_number: the only region
            return self.regions[0][3] is not None and self.regions[0][3].known(national)
        for listed, leading, patterns, own in self.regions:  # _region_code_for_number_from_list
            if listed is None:
                continue
            if leading is not None:
                if leading.match(national):
                    return own is not None and own.known(national)
            elif patterns.known(national):
                return own is not None and own.known(national)
        return False


@lru_cache(maxsize=None)
def _country(country_code: int) -> _Country | None:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, _pnu.region_code_for_country_code(country_code))
    return _Country(country_code, metadata) if metadata is not None else None


class _Reader:
    """Normalisation (with the fast path for E.164 lines) and keyed hashing of scrubbed numbers."""

    def __init__(self, secret: bytes, region: str):
        self.secret, self.region = secret, region

    def read(self, line: str) -> tuple[str, bytes] | None:
        text = line.strip()
        number = fast_e164(text) if _E164_SHAPE.fullmatch(text) else None
        if number is None:
            try:
                number = normalize(text, self.region)
            except InvalidNumber:
                return None
        return number, hmac.digest(self.secret, b"dnc:" + number.encode(), "sha256")


def _scrub_batch(store: Store, query: _Query, reader: _Reader, batch: list[str]) -> list[tuple[str, bool, str]]:
    # `_place_of_digest` inlined for every number (a Place is made only for the refused ones,
    # below); the field goes to Redis as its bytes, which are its ASCII characters.
    bucket_bits = store.config.dnc_bucket_bits
    bucket_shift, field_shift = 64 - bucket_bits, 64 - bucket_bits - 7 * FIELD_CHARS
    shape, fast, secret, bucket_key = _E164_SHAPE.fullmatch, fast_e164, reader.secret, store.keys.dnc_registrations
    read: list[tuple[str, bytes] | None] = []
    groups: dict[int, tuple[list[str], dict[int, int], list[Any], list[int]]] = {}
    for i, line in enumerate(batch):
        text = line.strip()
        number = fast(text) if shape(text) else None
        if number is None:
            item = reader.read(line)
            read.append(item)
            if item is None:
                continue
            number, digest = item
        else:
            digest = hmac.digest(secret, b"dnc:" + number.encode(), "sha256")
            read.append((number, digest))
        head = int.from_bytes(digest[:8], "big")
        bucket = head >> bucket_shift
        group = bucket >> GROUP_SHIFT
        entry = groups.get(group)
        if entry is None:
            entry = groups[group] = ([], {}, [], [])
        keys, index, args, positions = entry
        k = index.get(bucket)
        if k is None:
            k = index[bucket] = len(keys) + 1
            keys.append(bucket_key(group, bucket))
        bits = head >> field_shift
        args += (k, bytes((bits & 127, bits >> 7 & 127, bits >> 14 & 127, bits >> 21 & 127, bits >> 28 & 127,
                           bits >> 35 & 127)))
        positions.append(i)
    lookup = store.script("blocklist", "dnc_lookup.lua")

    def queue(pipe) -> None:
        # A group with one number (most of them with many bucket bits) is one HGET, not a script.
        for keys, _, args, _ in groups.values():
            if len(args) == 2:
                pipe.hget(keys[0], args[1])
            else:
                store.evalsha(pipe, lookup, keys, args)

    replies = store.pipelined(queue) if groups else []
    records: list[Record | None] = [None] * len(batch)
    for (_, _, args, positions), values in zip(groups.values(), replies):
        for i, raw in zip(positions, [values] if len(args) == 2 else values):
            if raw:
                record = Record.unpack(raw)
                if record.live(store, query.now) and record.refused & query.category:
                    records[i] = record
    # The refused ones: the organisation's consent and any windows, in a second round trip.
    refused = [i for i, record in enumerate(records) if record is not None]
    verdicts: dict[int, tuple[bool, str]] = {}
    if refused:
        places = {i: _place_of_digest(read[i][1], bucket_bits) for i in refused}  # type: ignore[index]

        def fill(pipe):
            for i in refused:
                pipe.hget(store.keys.dnc_consents(places[i].group), f"{places[i].name}.{query.organization}")
                if records[i].prefs & WINDOWS_FLAG:  # type: ignore[union-attr]
                    pipe.hget(store.keys.dnc_windows(places[i].group), places[i].name)
        extra = iter(store.pipelined(fill))
        for i in refused:
            record = records[i]
            consent = next(extra)
            windows = next(extra) if record.prefs & WINDOWS_FLAG else None  # type: ignore[union-attr]
            verdicts[i] = _verdict(store, query, record, windows, consent)  # type: ignore[arg-type]
    out = []
    for i, line in enumerate(batch):
        item = read[i]
        if item is None:
            out.append((line, False, "invalid_number"))
        else:
            callable_, reason = verdicts.get(i, (True, ""))
            out.append((item[0], callable_, reason))
    return out


def _verdict(store: Store, query: _Query, record: Record, windows: str | None,
             consent: str | None) -> tuple[bool, str]:
    """A registration that refuses the category: callable by consent or inside a window?"""
    if consent:
        owner, categories, _, _ = consent.split(".")
        if int(owner, 16) == record.device and int(categories, 16) & query.category:
            return True, "consent"
    covering = [window for window in _parse_windows(windows) if window.categories & query.category]
    if covering:
        weekday, minute = local_time(store, record, query.call_at)
        if any(window.covers(weekday, minute) for window in covering):
            return True, ""
        return False, "outside_window"
    return False, "registered" if record.prefs & REFUSE_ALL_FLAG else "category"


def check(store: Store, number: str, category: str, organization: str, call_at: float) -> tuple[bool, str]:
    """One number's scrub answer (E.164 in): (callable, reason)."""
    (_, callable_, reason), = scrub(store, organization, category, call_at, [number])
    return callable_, reason


# --- quota and receipts ------------------------------------------------------------------------

def charge_quota(store: Store, organization: str, count: int) -> bool:
    """Spend `count` of today's (UTC) CALLMARK_SCRUB_DAILY_NUMBERS for the key, all or nothing."""
    if count < 0:
        raise ValueError("count must not be negative")
    if count == 0:
        return True
    day = int(store.clock() // 86400)
    return bool(store.script("blocklist", "dnc_quota.lua")(
        keys=[store.keys.dnc_quota(organization, day)],
        args=[count, store.config.scrub_daily_numbers, QUOTA_KEEP_SECONDS]))


def quota_used(store: Store, organization: str) -> int:
    """Numbers the key scrubbed today (UTC)."""
    return int(store.redis.get(store.keys.dnc_quota(organization, int(store.clock() // 86400))) or 0)


def write_receipt(store: Store, organization: str, category: str, at: float, count: int,
                  callable_count: int, sha256: str, receipt_id: str | None = None) -> dict:
    """Keep the record of one scrub at `at`; `sha256` is over the submitted numbers' E.164 forms
    joined by newlines (invalid lines as given). `receipt_id`: the id, when it was announced
    before the scrub ended (a streamed answer); else a new one."""
    fields = {"i": receipt_id or secrets.token_hex(8), "t": int(at), "k": category, "n": count, "c": callable_count, "s": sha256}
    store.pipelined(lambda pipe: [  # the receipt and the day's scrub counts in one round trip
        pipe.xadd(store.keys.dnc_receipts(organization), fields, maxlen=RECEIPTS_KEPT, approximate=True),
        dnc_stats.note_scrub(store, pipe, at, count, callable_count)])
    return _receipt(organization, {key: str(value) for key, value in fields.items()})


def _receipt(organization: str, fields: dict[str, str]) -> dict:
    return {"receipt_id": fields["i"], "organization": organization, "at": iso(int(fields["t"])),
            "category": fields["k"], "count": int(fields["n"]), "callable": int(fields["c"]), "sha256": fields["s"]}


def receipts(store: Store, organization: str) -> list[dict]:
    """The key's receipts, newest first (the latest RECEIPTS_LISTED)."""
    entries = store.redis.xrevrange(store.keys.dnc_receipts(organization), count=RECEIPTS_LISTED)
    return [_receipt(organization, fields) for _, fields in entries]


# --- violations (blocklist/violations.py) --------------------------------------------------------

def violated(store: Store, device_id: str, calls: list[tuple[str, str, str | None, float]]) -> list[bool]:
    """For each marketing call to one of the device's numbers (E.164, marketing tag, the
    caller's company or None, unix time it rang): whether it broke the registration, which
    must be the device's, live then and past CALLMARK_DNC_GRACE_DAYS, refuse the category,
    have no accept window covering the call and no consent of that company. Two pipelined
    round trips for all the calls; the numbers are only hashed."""
    if not calls:
        return []
    places = [place(store, number) for number, _, _, _ in calls]
    raws = store.pipelined(lambda pipe: [pipe.hget(store.keys.dnc_registrations(where.group, where.bucket),
                                                   where.field) for where in places])
    owner, grace, now = device_tag(store, device_id), store.config.dnc_grace_days * 86400, store.clock()
    refusing: list[tuple[int, Record, _Query]] = []
    for i, ((_, category, company, at), raw) in enumerate(zip(calls, raws)):
        record = Record.unpack(raw) if raw is not None else None
        if record is not None and record.device == owner and record.live(store, at) \
                and at >= record.registered + grace and record.refused & _BIT[category]:
            organization = organization_key(store, company) if company else ""  # "": no consent matches
            refusing.append((i, record, _Query(organization, _BIT[category], at, now)))
    out = [False] * len(calls)
    if refusing:
        replies = store.pipelined(lambda pipe: [
            (pipe.hget(store.keys.dnc_consents(places[i].group), f"{places[i].name}.{query.organization}"),
             pipe.hget(store.keys.dnc_windows(places[i].group), places[i].name)) for i, _, query in refusing])
        for (i, record, query), consent, windows in zip(refusing, replies[0::2], replies[1::2]):
            out[i] = not _verdict(store, query, record, windows, consent)[0]
    return out
