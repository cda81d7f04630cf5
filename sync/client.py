"""The reference list-sync client, the code a phone app ports (docs/PROTOCOL.md section 8).

It keeps its state in one folder:

- ``keys.json``: the signing keys, ``{"keys": {"<key_id>": "<public key, base64>"}, "retired":
  {…}, "revoked": ["<key_id>", …]}``: trusted, retired and revoked (PROTOCOL.md section 5).
- ``<list>.list``: one list: a JSON line ``{"manifest": {...}, "signature": "...", "etag": ...}``,
  a newline, then the list's snapshot (pybloom-live's file, PROTOCOL.md section 3).

Every file is replaced atomically (a temporary file, fsync, rename), so a crash leaves the
old copy or the new one. A copy damaged anyway fails its signature or SHA-256 check when
read: lookups refuse it and the next sync replaces it with a fresh snapshot.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any, Callable

from bitarray import bitarray

from . import bloom, delta
from .numbers import RANGES, block_keys, normalize
from .signing import RETIREMENT_PURPOSE, REVOCATION_PURPOSE, endorsed_key, key_id, stated_key, verify

ALLOW = "allow"  # the list checked first: its numbers get through

log = logging.getLogger(__name__)

DEFAULT_REGION = "CN"  # region for numbers dialled in national format, as on the server
KEYS_FILE = "keys.json"
LIST_SUFFIX = ".list"
LIST_NAME = re.compile(r"^[a-z0-9_]+$")  # PROTOCOL.md section 4; also keeps names safe as file names
PUBLIC_KEY_BYTES = 32
ATTEMPTS = 5  # tries per request before a server or network error counts as a failure
BACKOFF_SECONDS = 1.0  # wait before the first retry; doubles with every further retry
MAX_BACKOFF_SECONDS = 60.0  # longest single wait, whatever Retry-After asks for
TIMEOUT_SECONDS = 30.0  # per request
ROUNDS = 3  # manifest fetches per list when a publish lands between manifest and download

# Manifest members and their JSON types (PROTOCOL.md section 4); more members may follow.
MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "list": str,
    "version": int,
    "generation": int,
    "error_rate": (int, float),
    "capacity": int,
    "count": int,
    "num_slices": int,
    "bits_per_slice": int,
    "sha256": str,
    "snapshot_bytes": int,
    "published_at": str,
    "key_id": str,
}
HEADER_FIELDS = ("error_rate", "num_slices", "bits_per_slice", "capacity", "count")  # snapshot header = manifest


class SyncError(Exception):
    """A list could not be downloaded or verified; the copy on the device stays as it was."""


class _Fallback(Exception):
    """The delta cannot be used: take the snapshot instead."""


class _Moved(Exception):
    """A newer version was published mid-sync: start again from the manifest."""


# --- HTTP -------------------------------------------------------------------------------

@dataclass
class Response:
    """One HTTP answer, whatever its status."""

    status: int
    headers: Message
    body: bytes

    def error(self) -> dict[str, Any]:
        """The body's {"code", "message", "details"} error object, or {} when there is none."""
        try:
            error = json.loads(self.body)["error"]
        except (ValueError, KeyError, TypeError):
            return {}
        return error if isinstance(error, dict) else {}

    def error_message(self) -> str:
        """The server's error message, or the bare status."""
        message = self.error().get("message")
        return f"HTTP {self.status}: {message}" if message else f"HTTP {self.status}"


class Http:
    """GET requests with bounded retries and exponential backoff on server and network errors."""

    def __init__(self, server: str, *, attempts: int = ATTEMPTS, backoff: float = BACKOFF_SECONDS,
                 timeout: float = TIMEOUT_SECONDS, sleep: Callable[[float], None] = time.sleep) -> None:
        self.server = server.rstrip("/")
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep

    def get(self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
        """The response to GET path; SyncError when the server keeps failing or cannot be reached."""
        url = self.server + path + ("?" + urllib.parse.urlencode(params) if params else "")
        request = urllib.request.Request(url, headers={"User-Agent": "callmark-sync/1", **(headers or {})})
        failure = ""
        for attempt in range(self.attempts):
            delay = self.backoff * 2**attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return Response(reply.status, reply.headers, reply.read())
            except urllib.error.HTTPError as exc:  # any status but 2xx, 304 included
                response = Response(exc.code, exc.headers, exc.read())
                if exc.code < 500 and exc.code != 429:
                    return response
                failure = response.error_message()
                retry_after = exc.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, int(retry_after))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                failure = str(getattr(exc, "reason", exc))
            if attempt + 1 < self.attempts:
                log.debug("GET %s failed (%s); retrying in %.1f s", url, failure, delay)
                self.sleep(min(delay, MAX_BACKOFF_SECONDS))
        raise SyncError(f"GET {path} failed {self.attempts} times, last: {failure}")

    def get_json(self, path: str) -> Any:
        """The JSON body of a 200 answer to GET path; SyncError for anything else."""
        response = self.get(path)
        if response.status != 200:
            raise SyncError(f"GET {path}: {response.error_message()}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise SyncError(f"GET {path}: the body is not JSON") from None


# --- local files --------------------------------------------------------------------------

def atomic_write(path: str, data: bytes) -> None:
    """Replace path with data so that a crash leaves either the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    if os.name == "posix":  # make the rename itself durable
        folder_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)


@dataclass
class Trust:
    """The client's signing keys (PROTOCOL.md section 5): trusted keys sign manifests; manifests
    that retired keys signed earlier stay valid; nothing a revoked key signed counts."""

    keys: dict[str, str]  # trusted: key id -> public key (base64)
    retired: dict[str, str]  # key id -> public key
    revoked: set[str]

    def empty(self) -> bool:
        """Nothing pinned, ever: the only state in which a keys document's key is taken on trust."""
        return not (self.keys or self.retired or self.revoked)

    def verifying(self) -> dict[str, str]:
        """The keys that vouch for a stored copy: trusted or retired."""
        return {**self.retired, **self.keys}

    def why_not(self, kid: Any) -> str:
        """Why a key id does not sign manifests here."""
        if kid in self.revoked:
            return "which is revoked"
        if kid in self.retired:
            return "which is retired"
        return "which is not trusted"

    def pin(self, kid: str, public: str) -> bool:
        """Trust a key, unless it was retired or revoked; True when that changed anything."""
        if kid in self.keys or kid in self.retired or kid in self.revoked:
            return False
        self.keys[kid] = public
        return True

    def apply(self, document: dict[str, Any]) -> list[str]:
        """Follow a keys document's endorsements, retirements and revocations (rules a, b and c of
        PROTOCOL.md section 5) until nothing changes; returns what changed, for the log."""
        endorsements = [document.get("next"), document.get("previous")]
        retirements, revocations = (document.get(m) if isinstance(document.get(m), list) else []
                                    for m in ("retired", "revoked"))
        changes: list[str] = []
        changed = True
        while changed:
            changed = False
            for endorsement in endorsements:
                found = endorsed_key(endorsement, self.keys)
                if found and self.pin(*found):
                    changes.append(f"now trusting signing key {found[0]}, endorsed by key "
                                   f"{endorsement['statement']['endorsed_by']}")
                    changed = True
            for retirement in retirements:
                kid = stated_key(retirement, RETIREMENT_PURPOSE, self.keys)
                if kid in self.keys:
                    self.retired[kid] = self.keys.pop(kid)
                    changes.append(f"signing key {kid} is retired: it signs no more manifests")
                    changed = True
            for revocation in revocations:
                kid = stated_key(revocation, REVOCATION_PURPOSE, self.keys)
                if kid is not None and kid not in self.revoked:
                    self.keys.pop(kid, None)
                    self.retired.pop(kid, None)
                    self.revoked.add(kid)
                    changes.append(f"signing key {kid} is revoked: nothing it signed is used any more")
                    changed = True
        return changes

    def describe(self) -> str:
        """`trusted <ids>; retired <ids>; revoked <ids>`, the form of the vectors of section 5."""
        ids = lambda found: ",".join(sorted(found)) or "-"  # noqa: E731
        return f"trusted {ids(self.keys)}; retired {ids(self.retired)}; revoked {ids(self.revoked)}"


def load_trust(folder: str) -> Trust:
    """The keys kept in folder; all empty before the first contact."""
    path = os.path.join(folder, KEYS_FILE)
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read())
        trust = Trust(document["keys"], document.get("retired", {}), set(document.get("revoked", [])))
    except FileNotFoundError:
        return Trust({}, {}, set())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SyncError(f"{path} is damaged: pass --key to pin the signing key again") from None
    for keys in (trust.keys, trust.retired):
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise SyncError(f"{path} is damaged: pass --key to pin the signing key again")
    if not all(isinstance(kid, str) for kid in trust.revoked):
        raise SyncError(f"{path} is damaged: pass --key to pin the signing key again")
    return trust


def read_trusted_keys(folder: str) -> dict[str, str]:
    """The trusted keys, key id -> public key (base64); empty before the first contact."""
    return load_trust(folder).keys


def save_trust(folder: str, trust: Trust) -> None:
    document = {"keys": trust.keys, "retired": trust.retired, "revoked": sorted(trust.revoked)}
    atomic_write(os.path.join(folder, KEYS_FILE), json.dumps(document, sort_keys=True, indent=1).encode())


def list_path(folder: str, name: str) -> str:
    if not LIST_NAME.fullmatch(name):
        raise SyncError(f"{name!r} is not a list name")
    return os.path.join(folder, name + LIST_SUFFIX)


def stored_lists(folder: str) -> list[str]:
    """Names of the lists kept in folder, sorted."""
    if not os.path.isdir(folder):
        return []
    names = (entry[: -len(LIST_SUFFIX)] for entry in os.listdir(folder) if entry.endswith(LIST_SUFFIX))
    return sorted(name for name in names if LIST_NAME.fullmatch(name))


@dataclass
class ListState:
    """One verified list: its signed manifest and its filter bits."""

    manifest: dict[str, Any]
    signature: str
    bits: bitarray
    etag: str | None = None  # the manifest's ETag, for If-None-Match

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @property
    def geometry(self) -> bloom.Geometry:
        return bloom.Geometry(self.manifest["num_slices"], self.manifest["bits_per_slice"])

    def snapshot(self) -> bytes:
        """The snapshot file these bits and the manifest's header fields make."""
        m = self.manifest
        return bloom.snapshot_bytes(self.bits, error_rate=m["error_rate"], capacity=m["capacity"], count=m["count"])

    def contains(self, number: str) -> bool:
        """True when the E.164 number is in the list (or is one of its rare false positives)."""
        return bloom.contains(self.bits, number, self.geometry)


def write_saved_list(folder: str, state: ListState) -> None:
    head = json.dumps({"manifest": state.manifest, "signature": state.signature, "etag": state.etag},
                      sort_keys=True, separators=(",", ":"))
    atomic_write(list_path(folder, state.manifest["list"]), head.encode() + b"\n" + state.snapshot())


def read_saved_list(folder: str, name: str, trusted: dict[str, str],
               trust: Trust | None = None) -> tuple[ListState | None, str | None]:
    """(the stored list, None), (None, None) when there is none, or (None, why) when it is damaged
    or no key in `trusted` vouches for it (with `trust`, the reason names a revoked key)."""
    try:
        with open(list_path(folder, name), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    head, _, snapshot = data.partition(b"\n")  # JSON never holds a raw newline
    try:
        document = json.loads(head)
        manifest, signature, etag = document["manifest"], document["signature"], document.get("etag")
        signer = manifest.get("key_id")
        if trust is not None and signer in trust.revoked:
            return None, f"the local copy is signed by key {signer}, which is revoked"
        check_manifest(manifest, signature, name, trusted, trust)
        bits = verified_snapshot(snapshot, manifest)
    except (ValueError, KeyError, TypeError, AttributeError, SyncError) as exc:
        return None, f"the local copy is damaged ({exc})"
    return ListState(manifest, signature, bits, etag), None


# --- verification -------------------------------------------------------------------------

def check_manifest(manifest: Any, signature: Any, name: str, trusted: dict[str, str],
                   trust: Trust | None = None) -> None:
    """Raise SyncError unless a key in `trusted` signed this well-formed manifest of list `name`."""
    if not isinstance(manifest, dict) or not isinstance(signature, str):
        raise SyncError("the manifest response is malformed")
    signer = manifest.get("key_id")
    if not isinstance(signer, str) or signer not in trusted:
        why = trust.why_not(signer) if trust and isinstance(signer, str) else "which is not trusted"
        raise SyncError(f"the manifest is signed by key {signer!r}, {why}")
    if not verify(trusted[signer], manifest, signature):
        raise SyncError("the manifest signature does not verify")
    for member, kind in MANIFEST_TYPES.items():
        value = manifest.get(member)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SyncError(f"manifest member {member!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    if manifest["list"] != name:
        raise SyncError(f"the manifest is for list {manifest['list']!r}, not {name!r}")
    try:
        geom = bloom.geometry(manifest["capacity"], manifest["error_rate"])
    except ValueError as exc:
        raise SyncError(f"manifest: {exc}") from None
    if geom != (manifest["num_slices"], manifest["bits_per_slice"]):
        raise SyncError("manifest geometry does not follow from its capacity and error rate")
    if manifest["snapshot_bytes"] != bloom.HEADER_BYTES + (geom.num_bits + 7) // 8:
        raise SyncError("manifest snapshot_bytes does not match its geometry")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest["sha256"]):
        raise SyncError("manifest sha256 is not 64 lowercase hex digits")


def verified_snapshot(data: bytes, manifest: dict[str, Any]) -> bitarray:
    """The bits of a snapshot that matches the manifest (length, SHA-256, header); else SyncError."""
    if len(data) != manifest["snapshot_bytes"]:
        raise SyncError(f"snapshot has {len(data)} bytes, the manifest says {manifest['snapshot_bytes']}")
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise SyncError("snapshot SHA-256 does not match the manifest")
    try:
        snapshot = bloom.parse_snapshot(data)
    except bloom.SnapshotError as exc:
        raise SyncError(f"snapshot: {exc}") from None
    for field in HEADER_FIELDS:
        if getattr(snapshot, field) != manifest[field]:
            raise SyncError(f"snapshot header {field} differs from the manifest")
    return snapshot.bits


# --- syncing ------------------------------------------------------------------------------

@dataclass
class Result:
    """What one sync did to one list."""

    list: str
    version: int
    how: str  # "up to date", "delta" or "snapshot"
    downloaded: int  # bytes of delta or snapshot

    def line(self) -> str:
        if self.how == "up to date":
            return f"{self.list}: version {self.version} (up to date)"
        return f"{self.list}: version {self.version} ({self.how} {self.downloaded} bytes)"


class Client:
    """Keeps verified copies of a server's lists in a folder."""

    def __init__(self, server: str, folder: str, key: str | None = None, **http_options: Any) -> None:
        self.http = Http(server, **http_options)
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.trust = load_trust(folder)
        self.keys_fetched = False
        if key is not None:
            self._pin_given(key)

    @property
    def trusted(self) -> dict[str, str]:
        """The keys whose manifests are accepted."""
        return self.trust.keys

    # keys

    def _pin_given(self, public: str) -> None:
        """Pin a key the app ships (`--key`), after checking it is one; never a retired or revoked one."""
        try:
            raw = base64.b64decode(public, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != PUBLIC_KEY_BYTES:
            raise SyncError("the given key is not a base64 32-byte Ed25519 public key")
        kid = key_id(raw)
        if kid in self.trust.revoked or kid in self.trust.retired:
            log.info("not pinning the given key %s, %s", kid, self.trust.why_not(kid))
        elif self.trust.pin(kid, public):
            save_trust(self.folder, self.trust)

    def refresh_keys(self) -> None:
        """Fetch the keys document: pin its key on first contact, then follow its statements."""
        document = self.http.get_json("/v1/keys/signing")
        self.keys_fetched = True
        if not isinstance(document, dict):
            raise SyncError("the keys document is malformed")
        changes = []
        if self.trust.empty():  # trust on first use, and only then
            public = document.get("public_key")
            try:
                raw = base64.b64decode(public, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raw = b""
            if len(raw) != PUBLIC_KEY_BYTES or document.get("key_id") != key_id(raw):
                raise SyncError("the keys document's key is malformed")
            self.trust.pin(key_id(raw), public)
            changes.append(f"pinned signing key {key_id(raw)} (trust on first use)")
        changes += self.trust.apply(document)
        for change in changes:
            log.info("%s", change)
        if changes:
            save_trust(self.folder, self.trust)
        if not self.trust.keys:
            raise SyncError("no signing key is trusted any more (every pinned key is retired or revoked): "
                            "the app must ship the new key (--key)")

    # lists

    def list_names(self) -> list[str]:
        """The lists the server has published."""
        document = self.http.get_json("/v1/lists")
        try:
            return [entry["name"] for entry in document["lists"] if entry.get("version") is not None]
        except (KeyError, TypeError, AttributeError):
            raise SyncError("the list index is malformed") from None

    def sync_list(self, name: str) -> Result:
        """Bring one list up to date, or raise SyncError and leave its copy as it was."""
        if not self.keys_fetched:
            self.refresh_keys()
        stored, damage = read_saved_list(self.folder, name, self.trust.verifying(), self.trust)
        if damage:
            log.warning("%s: %s; replacing it with a snapshot", name, damage)
        try:
            for _ in range(ROUNDS):
                try:
                    return self._sync_once(name, stored)
                except _Moved:
                    log.info("%s: a newer version was published meanwhile; starting again", name)
            raise SyncError(f"the list kept changing during {ROUNDS} attempts")
        except SyncError as exc:
            kept = f"kept version {stored.version}" if stored else "no verified copy kept"
            raise SyncError(f"{exc}; {kept}") from None

    def _sync_once(self, name: str, stored: ListState | None) -> Result:
        manifest, signature, etag = self._manifest(name, stored)
        if stored and manifest["version"] == stored.version:
            if manifest != stored.manifest:
                raise SyncError(f"version {stored.version} was published again with other content")
            return Result(name, stored.version, "up to date", 0)
        num_bits = bloom.Geometry(manifest["num_slices"], manifest["bits_per_slice"]).num_bits
        bits: bitarray | None = None
        if stored and stored.manifest["generation"] == manifest["generation"] and len(stored.bits) == num_bits:
            try:
                bits, size = self._apply_delta(name, stored, manifest)
                how = "delta"
            except _Fallback as exc:
                log.warning("%s: %s; taking the snapshot", name, exc)
        if bits is None:
            bits, size = self._snapshot(name, manifest)
            how = "snapshot"
        try:
            write_saved_list(self.folder, ListState(manifest, signature, bits, etag))
        except OSError as exc:
            raise SyncError(f"cannot write the list: {exc}") from None
        return Result(name, manifest["version"], how, size)

    def _manifest(self, name: str, stored: ListState | None) -> tuple[dict[str, Any], str, str | None]:
        """The list's verified manifest, its signature and ETag."""
        headers = {"If-None-Match": stored.etag} if stored and stored.etag else {}
        response = self.http.get(f"/v1/lists/{name}/manifest", headers=headers)
        if response.status == 304 and stored:
            return stored.manifest, stored.signature, stored.etag
        if response.status != 200:
            raise SyncError(f"manifest: {response.error_message()}")
        try:
            document = json.loads(response.body)
            manifest, signature = document["manifest"], document["signature"]
        except (ValueError, KeyError, TypeError):
            raise SyncError("the manifest response is malformed") from None
        signer = manifest.get("key_id") if isinstance(manifest, dict) else None
        if isinstance(signer, str) and signer not in self.trusted:  # perhaps a rotation since the last fetch
            self.refresh_keys()
        check_manifest(manifest, signature, name, self.trusted, self.trust)
        if stored and manifest["version"] < stored.version:
            raise SyncError(f"the server offers version {manifest['version']}, older than version {stored.version}")
        if stored and manifest["generation"] < stored.manifest["generation"]:
            raise SyncError(f"the server offers generation {manifest['generation']}, "
                            f"older than generation {stored.manifest['generation']}")
        return manifest, signature, response.headers.get("ETag")

    def _apply_delta(self, name: str, stored: ListState, manifest: dict[str, Any]) -> tuple[bitarray, int]:
        """The stored bits patched to the manifest's version, and the delta's size; _Fallback when anything is off."""
        response = self.http.get(f"/v1/lists/{name}/delta", {"from": stored.version, "to": manifest["version"]})
        if response.status != 200:
            raise _Fallback(f"no delta ({response.error_message()})")
        try:
            header, positions = delta.decode(response.body)
        except delta.DeltaError as exc:
            raise _Fallback(f"the delta is malformed ({exc})") from None
        expected = (name, stored.version, manifest["version"], len(stored.bits), bytes.fromhex(manifest["sha256"]))
        found = (header.list_name, header.from_version, header.to_version, header.num_bits, header.snapshot_sha256)
        if found != expected:
            raise _Fallback("the delta header does not match the manifest")
        bits = bitarray(stored.bits)
        delta.apply(bits, positions)
        try:
            rebuilt = ListState(manifest, "", bits).snapshot()
        except ValueError as exc:
            raise _Fallback(f"the patched filter does not fit the manifest ({exc})") from None
        if hashlib.sha256(rebuilt).hexdigest() != manifest["sha256"]:
            raise _Fallback("the patched filter's SHA-256 does not match the manifest")
        return bits, len(response.body)

    def _snapshot(self, name: str, manifest: dict[str, Any]) -> tuple[bitarray, int]:
        """The verified bits of the manifest's snapshot, and its size."""
        response = self.http.get(f"/v1/lists/{name}/snapshot", {"version": manifest["version"]})
        if response.status == 404 and response.error().get("code") == "unknown_version":
            raise _Moved()  # only the latest snapshot is kept, and a publish came in between
        if response.status != 200:
            raise SyncError(f"snapshot: {response.error_message()}")
        return verified_snapshot(response.body, manifest), len(response.body)


def lookup(folder: str, number: str, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """{"number": E.164, "lists": the stored lists it hits}, offline; SyncError if a list is
    damaged, or if the folder holds none (nothing was synced there).

    The order is the one every app must follow: the `allow` list first (a hit there ends the
    lookup: the number gets through), then the number in the other lists, then its blocks of
    10 and 100 in `ranges` (keys from sync.numbers.block_keys).
    """
    e164 = normalize(number, region)
    names = stored_lists(folder)
    if not names:
        raise SyncError(f"no synced lists in {folder}: run `python -m sync sync --server <url> --dir {folder}` first")
    trust = load_trust(folder)
    states = {}
    for name in names:
        state, damage = read_saved_list(folder, name, trust.verifying(), trust)
        if state is None:
            raise SyncError(f"{name}: {damage}; run sync to repair it")
        states[name] = state
    if ALLOW in states and states[ALLOW].contains(e164):
        return {"number": e164, "lists": [ALLOW]}
    hits = [name for name, state in states.items() if name not in (ALLOW, RANGES) and state.contains(e164)]
    if RANGES in states and any(states[RANGES].contains(key) for key in block_keys(e164)):
        hits.append(RANGES)
    return {"number": e164, "lists": hits}


ONLINE_PREFIX_DIGITS = 4  # hex digits sent: 16 bits; docs/PRIVACY.md gives the anonymity set


def online_lookup(server: str, token: str, e164: str, digits: int = ONLINE_PREFIX_DIGITS) -> dict[str, Any] | None:
    """The server's reputation of a number, asked by hash prefix: the number never leaves the phone.

    Ask for every incoming number that is not in a contact list, hit or not: asking only
    after a filter hit would tell the server the number is one of the few listed ones.
    """
    full = hashlib.sha256(e164.encode("utf-8")).hexdigest()
    response = Http(server).get(f"/v1/lookup/prefix/{full[:digits]}", headers={"Authorization": f"Bearer {token}"})
    if response.status != 200:
        raise SyncError(f"lookup: {response.error_message()}")
    try:
        matches = json.loads(response.body)["matches"]
    except (ValueError, KeyError, TypeError):
        raise SyncError("lookup: the answer is not the documented JSON") from None
    match = next((m for m in matches if isinstance(m, dict) and m.get("hash") == full), None)
    if match is None:
        return None
    return {k: match.get(k) for k in ("verdict", "label", "reporters", "tags")}
