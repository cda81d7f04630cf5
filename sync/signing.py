"""Ed25519 signing of manifests and key statements (docs/PROTOCOL.md sections 4 and 5).

The protocol, which the reference client uses too; it imports nothing of the server. The
server's key state (which key signs, which is announced, retired or revoked) is
blocklist/keyring.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "ed25519"
ENDORSEMENT_PURPOSE = "callmark-signing-key"  # keeps statements and manifests apart
RETIREMENT_PURPOSE = "callmark-signing-key-retired"
REVOCATION_PURPOSE = "callmark-signing-key-revoked"
SEED_BYTES = 32
KEY_ID = re.compile(r"[0-9a-f]{16}")


def canonical(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def iso(unix: float) -> str:
    """RFC 3339 UTC to the second, `Z` suffix: `published_at` and `issued_at`."""
    return datetime.fromtimestamp(int(unix), tz=timezone.utc).isoformat().replace("+00:00", "Z")


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

    def retire(self, retired_id: str, issued_at: str) -> dict[str, Any]:
        """This key says that key `retired_id` signs nothing any more."""
        return self._about(RETIREMENT_PURPOSE, retired_id, issued_at)

    def revoke(self, revoked_id: str, issued_at: str) -> dict[str, Any]:
        """This key says that key `revoked_id` may be in other hands."""
        return self._about(REVOCATION_PURPOSE, revoked_id, issued_at)

    def _about(self, purpose: str, subject: str, issued_at: str) -> dict[str, Any]:
        statement = {"purpose": purpose, "algorithm": ALGORITHM, "key_id": subject,
                     "signed_by": self.key_id, "issued_at": issued_at}
        return {"statement": statement, "signature": self.sign(statement)}


def verify(public_b64: str, obj: dict[str, Any], signature_b64: str) -> bool:
    """True when `signature_b64` is the public key's Ed25519 signature of canonical(obj)."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), canonical(obj))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def endorsed_key(endorsement: Any, trusted: dict[str, str]) -> tuple[str, str] | None:
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
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def stated_key(document: Any, purpose: str, trusted: dict[str, str]) -> str | None:
    """The key id a retirement or revocation (by `purpose`) names, if a trusted key signed it.

    A key never retires itself (that could leave a client with no key); it may revoke itself.
    """
    try:
        statement, signature = document["statement"], document["signature"]
        subject, signer = statement["key_id"], statement["signed_by"]
        if (statement.get("purpose") != purpose or statement.get("algorithm") != ALGORITHM
                or not isinstance(statement.get("issued_at"), str)
                or not KEY_ID.fullmatch(subject) or not KEY_ID.fullmatch(signer)):
            return None
        if purpose == RETIREMENT_PURPOSE and signer == subject:
            return None
        if signer not in trusted or not verify(trusted[signer], statement, signature):
            return None
        return subject
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
