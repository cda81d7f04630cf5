"""Ed25519 signing of manifests and key endorsements (docs/PROTOCOL.md sections 4 and 5)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from blocklist.errors import ConfigError
from blocklist.secretfile import load_or_create

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "ed25519"
ENDORSEMENT_PURPOSE = "callmark-signing-key"  # keeps endorsements and manifests apart
SEED_BYTES = 32


def canonical(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @classmethod
    def from_seed(cls, seed: bytes) -> "SigningKey":
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed has {SEED_BYTES} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_base64(cls, text: str) -> "SigningKey":
        return cls.from_seed(base64.b64decode(text.strip(), validate=True))

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    def sign(self, obj: dict[str, Any]) -> str:
        return base64.b64encode(self.private.sign(canonical(obj))).decode()

    def endorse(self, new: "SigningKey", issued_at: str) -> dict[str, Any]:
        """This (old) key vouches for `new`: the rotation step of PROTOCOL.md section 5."""
        statement = {
            "purpose": ENDORSEMENT_PURPOSE,
            "algorithm": ALGORITHM,
            "key_id": new.key_id,
            "public_key": new.public_b64,
            "endorsed_by": self.key_id,
            "issued_at": issued_at,
        }
        return {"statement": statement, "signature": self.sign(statement)}


def verify(public_b64: str, obj: dict[str, Any], signature_b64: str) -> bool:
    """True when `signature_b64` is the public key's Ed25519 signature of canonical(obj)."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), canonical(obj))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def endorsed_key(endorsement: dict[str, Any], trusted: dict[str, str]) -> tuple[str, str] | None:
    """(key_id, public key) of the key an endorsement vouches for, if a trusted key signed it."""
    try:
        statement, signature = endorsement["statement"], endorsement["signature"]
        signer = trusted.get(statement["endorsed_by"])
        if (signer is None or statement.get("purpose") != ENDORSEMENT_PURPOSE
                or statement.get("algorithm") != ALGORITHM):
            return None
        public = statement["public_key"]
        if key_id(base64.b64decode(public, validate=True)) != statement["key_id"]:
            return None
        if not verify(signer, statement, signature):
            return None
        return statement["key_id"], public
    except (KeyError, TypeError, ValueError):
        return None


# --- the server's keys ----------------------------------------------------------------

SIGNING_FILE = "signing.key"  # in the data folder: base64 seed of the current key
NEXT_SIGNING_FILE = "signing-next.key"  # announced successor, while a rotation is under way
PREVIOUS_SIGNING_FILE = "signing-previous.key"  # kept after a rotation, for the record


def _read_key(text: str | None, path: str | None) -> SigningKey | None:
    if text:
        return SigningKey.from_base64(text)
    if path:
        with open(path) as f:
            return SigningKey.from_base64(f.read())
    return None


def new_seed_text() -> bytes:
    return base64.b64encode(os.urandom(SEED_BYTES)) + b"\n"


def load_keys(config) -> tuple[SigningKey, SigningKey | None]:
    """The key that signs manifests now and the announced next one, from settings or the data folder."""
    current = _read_key(config.signing_key, config.signing_key_file)
    upcoming = _read_key(config.signing_next_key, config.signing_next_key_file)
    if current is None:
        if config.profile == "production":
            raise ConfigError("CALLMARK_SIGNING_KEY or CALLMARK_SIGNING_KEY_FILE must be set in production")
        current = SigningKey.from_base64(
            load_or_create(os.path.join(config.data_dir, SIGNING_FILE), new_seed_text).decode())
        if upcoming is None:
            upcoming = _read_key(None, _existing(os.path.join(config.data_dir, NEXT_SIGNING_FILE)))
    return current, upcoming


def _existing(path: str) -> str | None:
    return path if os.path.exists(path) else None


def keys_document(store, current: SigningKey, upcoming: SigningKey | None) -> dict[str, Any]:
    """`GET /v1/keys/signing`: the current key, its successor's and its own endorsement."""
    endorsements = store.redis.hmget(store.keys.signing_endorsements(),
                                     [current.key_id] + ([upcoming.key_id] if upcoming else []))
    return {
        "algorithm": ALGORITHM,
        "key_id": current.key_id,
        "public_key": current.public_b64,
        "next": json.loads(endorsements[1]) if upcoming and endorsements[1] else None,
        "previous": json.loads(endorsements[0]) if endorsements[0] else None,
    }


def announce(store, current: SigningKey, upcoming: SigningKey, issued_at: str) -> None:
    """Record, once, the current key's endorsement of its successor, for every instance to serve."""
    endorsement = current.endorse(upcoming, issued_at)
    store.redis.hsetnx(store.keys.signing_endorsements(), upcoming.key_id,
                       json.dumps(endorsement, sort_keys=True, separators=(",", ":")))
