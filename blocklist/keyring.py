"""The server's signing keys (docs/PROTOCOL.md section 5): which key signs, which one is
announced, which are retired or revoked.

That state lives in Redis, so every gunicorn worker, the scheduler and the CLI see a change
at once; the private seeds never go there: each process finds them in its own settings or in
the data folder, by key id. The signatures themselves are sync/signing.py.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from redis import RedisError

from sync.signing import ALGORITHM, SEED_BYTES, SigningKey, iso

from .errors import ConfigError, KeyChangeRefused, SigningUnavailable
from .secretfile import load_or_create

log = logging.getLogger(__name__)


SIGNING_FILE = "signing.key"  # in the data folder: base64 seed of the current key
NEXT_SIGNING_FILE = "signing-next.key"  # announced successor, while a rotation is under way
PREVIOUS_SIGNING_FILE = "signing-previous.key"  # kept after a rotation, for the record
STATE_FIELD = "state"  # in the endorsements hash, whose other fields are key ids (16 hex)


def _read_key(text: str | None, path: str | None) -> SigningKey | None:
    if text:
        return SigningKey.from_base64(text)
    if path:
        with open(path) as f:
            return SigningKey.from_base64(f.read())
    return None


def new_seed_text() -> bytes:
    return base64.b64encode(os.urandom(SEED_BYTES)) + b"\n"


@dataclass
class KeyState:
    """What every process agrees on, kept in Redis: no private key."""

    current: str  # key id of the key that signs manifests
    next: str | None = None  # the announced successor
    keys: dict[str, str] = field(default_factory=dict)  # key id -> public key, every key the service has had
    retired: list[dict[str, Any]] = field(default_factory=list)  # signed retirements, oldest first
    revoked: list[dict[str, Any]] = field(default_factory=list)  # signed revocations, oldest first
    generation: int = 0  # counts the changes

    @classmethod
    def from_json(cls, text: str) -> "KeyState":
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))

    def retired_ids(self) -> set[str]:
        return {s["statement"]["key_id"] for s in self.retired}

    def revoked_ids(self) -> set[str]:
        return {s["statement"]["key_id"] for s in self.revoked}


_CHANGE = """
-- KEYS[1] the signing hash (Keys.signing_endorsements). ARGV[1] the state the change was
-- computed from ('' for none), ARGV[2] the new state, ARGV[3 ..] endorsement field/value
-- pairs, each written only if absent. Returns 1, or 0 when another change came first.
local old = redis.call('HGET', KEYS[1], 'state') or ''
if old ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


class Keyring:
    """One process's view of the signing keys: the state in Redis, read afresh on every use,
    and the seeds this process can find for it.

    Seeds come from CALLMARK_SIGNING_KEY(_FILE) and CALLMARK_SIGNING_NEXT_KEY(_FILE); without
    the first (development only) from the data folder. Files are read again whenever Redis
    names a key whose seed is not known yet, so a seed mounted or written after start is found.
    """

    def __init__(self, store) -> None:
        self.store = store
        self.config = store.config
        self.from_folder = not (self.config.signing_key or self.config.signing_key_file)
        if self.from_folder and self.config.profile == "production":
            raise ConfigError("CALLMARK_SIGNING_KEY or CALLMARK_SIGNING_KEY_FILE must be set in production")
        self.seeds: dict[str, SigningKey] = {}
        self.configured = self._load_seeds(create=True)

    # seeds

    def _path(self, name: str) -> str:
        return os.path.join(self.config.data_dir, name)

    def _load_seeds(self, create: bool = False) -> SigningKey:
        """Read every seed this process can see; returns the configured current key."""
        config = self.config
        upcoming = _read_key(config.signing_next_key, config.signing_next_key_file)
        if self.from_folder:
            if upcoming is None:  # the successor first: promote moves it over the current file
                upcoming = self._file_key(NEXT_SIGNING_FILE)
            current = self._file_key(SIGNING_FILE, create=create)
            previous = self._file_key(PREVIOUS_SIGNING_FILE)
        else:
            current, previous = _read_key(config.signing_key, config.signing_key_file), None
        for key in (upcoming, current, previous):
            if key is not None:
                self.seeds[key.key_id] = key
        self.configured_next = upcoming
        return current

    def _file_key(self, name: str, create: bool = False) -> SigningKey | None:
        path = self._path(name)
        if create:
            return SigningKey.from_base64(load_or_create(path, new_seed_text).decode())
        try:
            with open(path) as f:
                return SigningKey.from_base64(f.read())
        except FileNotFoundError:
            return None

    def seed(self, wanted: str) -> SigningKey | None:
        """The private key with this id, if this process can find it."""
        if wanted not in self.seeds:
            self._load_seeds()
        return self.seeds.get(wanted)

    # the shared state

    def _read(self) -> tuple[str, dict[str, str]]:
        fields = self.store.redis.hgetall(self.store.keys.signing_endorsements())
        return fields.get(STATE_FIELD, ""), fields

    def _write(self, old: str, state: KeyState, endorsements: dict[str, dict[str, Any]] | None = None) -> bool:
        state.generation += 1
        pairs = [x for kid, e in (endorsements or {}).items() for x in (kid, json.dumps(e, sort_keys=True))]
        return bool(self.store.redis.eval(_CHANGE, 1, self.store.keys.signing_endorsements(),
                                          old, state.to_json(), *pairs))

    def _load(self) -> tuple[str, KeyState, dict[str, str]]:
        """The state as Redis holds it now; the first process to need it writes it from its settings."""
        while True:
            raw, fields = self._read()
            if raw:
                return raw, KeyState.from_json(raw), fields
            self._bootstrap(fields)

    def _bootstrap(self, fields: dict[str, str]) -> None:
        current = self._load_seeds() or self.configured
        upcoming = self.configured_next
        state = KeyState(current=current.key_id, keys={current.key_id: current.public_b64})
        endorsements = {}
        if current.key_id in fields:  # a deployment from before the state was kept: its predecessor
            older = json.loads(fields[current.key_id])["statement"]
            state.keys[older["endorsed_by"]] = ""  # its id, to retire or revoke it; its public key was never kept
        if upcoming is not None and upcoming.key_id != current.key_id:
            state.next, state.keys[upcoming.key_id] = upcoming.key_id, upcoming.public_b64
            endorsements[upcoming.key_id] = current.endorse(upcoming, iso(self.store.clock()))
        if self._write("", state, endorsements):
            log.info("signing state started: key %s signs%s", state.current,
                     f", key {state.next} announced" if state.next else "")

    def start(self) -> None:
        """Say so if this process cannot sign with the key the state names. Only reads: the
        state is written by its first use (a keys document, a publish, a key change), and a
        Redis that does not answer yet only skips the check: requests will say it is down."""
        try:
            raw, _ = self._read()
        except RedisError:
            return
        if not raw:
            return
        state = KeyState.from_json(raw)
        if self.seed(state.current) is None:
            log.warning("the service signs with key %s, whose seed this process does not have (%s): "
                        "it serves, but its publishes will fail", state.current, self._where())
        if self.configured_next is not None and self.configured_next.key_id not in state.keys:
            log.info("CALLMARK_SIGNING_NEXT_KEY holds key %s, not announced yet: "
                     "run `flask --app app signing rotate` to announce it", self.configured_next.key_id)

    def state(self) -> KeyState:
        return self._load()[1]

    def document(self) -> dict[str, Any]:
        """`GET /v1/keys/signing` (PROTOCOL.md section 5), as Redis says now."""
        _, state, fields = self._load()
        return {
            "algorithm": ALGORITHM,
            "key_id": state.current,
            "public_key": state.keys[state.current],
            "next": json.loads(fields[state.next]) if state.next and state.next in fields else None,
            "previous": json.loads(fields[state.current]) if state.current in fields else None,
            "retired": state.retired,
            "revoked": state.revoked,
        }

    def signer(self) -> SigningKey:
        """The key to sign with now; SigningUnavailable when this process lacks its seed."""
        current = self.state().current
        key = self.seed(current)
        if key is None:
            raise SigningUnavailable(
                f"the service signs with key {current}, whose seed this process cannot find "
                f"({self._where()}); it publishes nothing until it has it")
        return key

    def upcoming(self) -> SigningKey | None:
        """The announced successor, if there is one and this process holds its seed."""
        state = self.state()
        return self.seed(state.next) if state.next else None

    def __iter__(self) -> Iterator[SigningKey | None]:
        """(the signing key, the announced one or None) as Redis says now: the pair callers unpack."""
        return iter((self.signer(), self.upcoming()))

    def __getitem__(self, index: int) -> SigningKey | None:
        return tuple(self)[index]

    def _where(self) -> str:
        if self.from_folder:
            return f"{SIGNING_FILE}, {NEXT_SIGNING_FILE} or {PREVIOUS_SIGNING_FILE} in {self.config.data_dir}"
        return "CALLMARK_SIGNING_KEY(_FILE) or CALLMARK_SIGNING_NEXT_KEY(_FILE)"

    # changes (blocklist/publish.py runs the ones that affect signing under the publish lock)

    def _change(self, compute) -> Any:
        """Apply `compute(state, fields) -> (result, endorsements)` atomically, retrying on a race."""
        while True:
            raw, state, fields = self._load()
            result, endorsements = compute(state, fields)
            if self._write(raw, state, endorsements):
                return result

    def announce(self, issued_at: str) -> SigningKey:
        """Step 1: the configured successor (CALLMARK_SIGNING_NEXT_KEY) or, with keys in the data
        folder, a new one written there, endorsed by the current key and listed in `next`."""
        def compute(state: KeyState, fields):
            if state.next:
                raise KeyChangeRefused(f"key {state.next} is already announced; promote it with --promote")
            upcoming = self._new_successor()
            if upcoming.key_id in state.keys:
                raise KeyChangeRefused(f"key {upcoming.key_id} has been used before: announce a new seed"
                                       + (f" (remove {NEXT_SIGNING_FILE} from {self.config.data_dir})"
                                          if self.from_folder else ""))
            signer = self._seed_of_current(state)
            state.next, state.keys[upcoming.key_id] = upcoming.key_id, upcoming.public_b64
            return upcoming, {upcoming.key_id: signer.endorse(upcoming, issued_at)}

        return self._change(compute)

    def _new_successor(self) -> SigningKey:
        """The configured successor, or (keys in the data folder) a new seed written there once."""
        self._load_seeds()
        if self.configured_next is not None:
            return self.configured_next
        if not self.from_folder:
            raise KeyChangeRefused("set CALLMARK_SIGNING_NEXT_KEY or CALLMARK_SIGNING_NEXT_KEY_FILE to the new "
                                   "seed, here and on every process that publishes, then run this again")
        from blocklist.secretfile import load_or_create

        key = SigningKey.from_base64(load_or_create(self._path(NEXT_SIGNING_FILE), new_seed_text).decode())
        self.seeds[key.key_id] = key
        return key

    def _seed_of_current(self, state: KeyState) -> SigningKey:
        key = self.seed(state.current)
        if key is None:
            raise KeyChangeRefused(f"this process cannot find the seed of key {state.current}, which signs now "
                                   f"({self._where()})")
        return key

    def promote(self) -> SigningKey:
        """Step 2: the announced key signs from now on, in every process that holds its seed."""
        def compute(state: KeyState, fields):
            if not state.next:
                raise KeyChangeRefused("no key is announced; run `signing rotate` first")
            new = self.seed(state.next)
            if new is None:
                raise KeyChangeRefused(f"this process cannot find the seed of the announced key {state.next} "
                                       f"({self._where()})")
            state.current, state.next = state.next, None
            return new, None

        new = self._change(compute)
        self._promote_files(new)
        return new

    def _promote_files(self, new: SigningKey) -> None:
        """With keys in the data folder, make the files say what Redis says. The successor is
        moved over the current file in one rename, after the current seed is copied aside, so a
        process reading signing-next.key, then signing.key, then signing-previous.key finds both."""
        if not self.from_folder:
            return
        next_path, current_path = self._path(NEXT_SIGNING_FILE), self._path(SIGNING_FILE)
        if not os.path.exists(next_path):
            return
        with open(current_path, "rb") as f:
            old = f.read()
        temporary = self._path(PREVIOUS_SIGNING_FILE + f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(old)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self._path(PREVIOUS_SIGNING_FILE))
        os.replace(next_path, current_path)

    def predecessor(self) -> str | None:
        """The key the current one took over from, if any."""
        _, state, fields = self._load()
        return self._predecessor(state, fields)

    def retire(self, retired_id: str, issued_at: str) -> str:
        """Step 3: the current key retires a former key (sync.publish.retire checks no list is
        still signed by it)."""
        def compute(state: KeyState, fields):
            self._refuse_retiring(state, retired_id)
            state.retired.append(self._seed_of_current(state).retire(retired_id, issued_at))
            return retired_id, None

        return self._change(compute)

    def revoke(self, revoked_id: str, issued_at: str) -> SigningKey | None:
        """Revoke a key; revoking the signing key first promotes the announced one, which is returned."""
        promoted: list[SigningKey] = []

        def compute(state: KeyState, fields):
            promoted.clear()
            if revoked_id not in state.keys:
                raise KeyChangeRefused(f"{revoked_id!r} is not a key of this service")
            if revoked_id in state.revoked_ids():
                raise KeyChangeRefused(f"key {revoked_id} is already revoked")
            if revoked_id == state.current:
                if not state.next:
                    raise KeyChangeRefused(f"key {revoked_id} signs now and no key is announced to take over: "
                                           "run `signing rotate`, then revoke it (promoting the new key)")
                new = self.seed(state.next)
                if new is None:
                    raise KeyChangeRefused(f"this process cannot find the seed of the announced key {state.next}")
                state.current, state.next = state.next, None
                promoted.append(new)
            elif revoked_id == state.next:
                state.next = None
            state.revoked.append(self._seed_of_current(state).revoke(revoked_id, issued_at))
            return None, None

        self._change(compute)
        if promoted:
            self._promote_files(promoted[0])
        elif self.from_folder:
            self._drop_revoked_successor(revoked_id)
        return promoted[0] if promoted else None

    def _drop_revoked_successor(self, revoked_id: str) -> None:
        """A revoked announced key's seed must never be announced again."""
        key = self._file_key(NEXT_SIGNING_FILE)
        if key is not None and key.key_id == revoked_id:
            os.unlink(self._path(NEXT_SIGNING_FILE))
        self.seeds.pop(revoked_id, None)

    @staticmethod
    def _predecessor(state: KeyState, fields: dict[str, str]) -> str | None:
        endorsement = fields.get(state.current)
        return json.loads(endorsement)["statement"]["endorsed_by"] if endorsement else None

    def check_retiring(self, subject: str) -> None:
        """KeyChangeRefused unless `subject` is a former key, neither retired nor revoked yet."""
        self._refuse_retiring(self.state(), subject)

    @staticmethod
    def _refuse_retiring(state: KeyState, subject: str) -> None:
        if subject not in state.keys:
            raise KeyChangeRefused(f"{subject!r} is not a key of this service")
        if subject == state.current:
            raise KeyChangeRefused(f"key {subject} signs now: promote its successor first")
        if subject == state.next:
            raise KeyChangeRefused(f"key {subject} is the announced successor: revoke it instead")
        if subject in state.revoked_ids():
            raise KeyChangeRefused(f"key {subject} is revoked already")
        if subject in state.retired_ids():
            raise KeyChangeRefused(f"key {subject} is already retired")
