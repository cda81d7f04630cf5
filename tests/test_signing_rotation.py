"""Signing keys across processes: rotation, retirement and revocation (docs/PROTOCOL.md section 5).

Two apps on one Redis and one data folder stand for two gunicorn workers; the scheduler runs
as a process of its own. Run as a script to print the vectors of section 5.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from blocklist import publish
from blocklist.keyring import NEXT_SIGNING_FILE, new_seed_text
from blocklist.web import create_app
from sync import signing
from sync.client import KEYS_FILE, Client, SyncError, Trust, load_trust, lookup
from tests.support import serve

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
FAST_RETRIES = {"attempts": 2, "backoff": 0.01}


def new_client(url: str, folder: str, key: str | None = None) -> Client:
    return Client(url, folder, key, **FAST_RETRIES)


def keys_document(app) -> dict:
    response = app.test_client().get("/v1/keys/signing")
    assert response.status_code == 200
    return response.get_json()


def served_manifest(app, name: str = "spam") -> dict:
    return app.test_client().get(f"/v1/lists/{name}/manifest").get_json()


def assert_verifies_with_advertised_key(app, name: str = "spam") -> None:
    """The manifest this instance serves is signed by the key this instance advertises."""
    document, body = keys_document(app), served_manifest(app, name)
    assert body["manifest"]["key_id"] == document["key_id"]
    assert signing.verify(document["public_key"], body["manifest"], body["signature"])


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


# ---------------------------------------------------------------- live across processes

def test_a_rotation_reaches_another_instance_without_a_restart(config):
    worker_a, worker_b = create_app(config), create_app(config)
    assert keys_document(worker_b)["next"] is None
    announced = cli(worker_a, "signing", "rotate")
    assert announced.exit_code == 0, announced.output
    upcoming = re.search(r"announced key ([0-9a-f]{16})", announced.output).group(1)
    document = keys_document(worker_b)
    assert document["next"] is not None and document["next"]["statement"]["key_id"] == upcoming
    assert signing.endorsed_key(document["next"], {document["key_id"]: document["public_key"]})
    assert "every instance serves it at once" in announced.output


def test_after_promote_and_publish_the_other_instance_serves_manifests_its_key_verifies(config):
    worker_a, worker_b = create_app(config), create_app(config)
    assert cli(worker_a, "lists", "publish").exit_code == 0
    old, old_public = keys_document(worker_b)["key_id"], keys_document(worker_b)["public_key"]
    assert cli(worker_a, "signing", "rotate").exit_code == 0
    promoted = cli(worker_a, "signing", "rotate", "--promote")
    assert promoted.exit_code == 0, promoted.output
    new = re.search(r"key ([0-9a-f]{16}) now signs", promoted.output).group(1)
    assert keys_document(worker_b)["key_id"] == new != old
    assert keys_document(worker_b)["previous"]["statement"]["endorsed_by"] == old
    body = served_manifest(worker_b)  # still signed by the old key, which phones trust …
    assert body["manifest"]["key_id"] == old and signing.verify(old_public, body["manifest"], body["signature"])
    published = cli(worker_a, "lists", "publish")
    assert published.exit_code == 0, published.output
    for name in ("spam", "fraud", "ring_once", "allow", "ranges"):
        assert served_manifest(worker_b, name)["manifest"]["key_id"] == new
        assert_verifies_with_advertised_key(worker_b, name)
    # … and the other instance publishes with the new key too, from the data folder.
    assert worker_b.extensions["callmark.signing"].signer().key_id == new


def scheduler(config, secret_key) -> subprocess.Popen:
    """`python -m blocklist.run.scheduler` on the same Redis and data folder, publishing every second."""
    env = dict(os.environ, REDIS_URL=config.redis_url, CALLMARK_SECRET_KEY=secret_key,
               CALLMARK_DATA_DIR=config.data_dir, CALLMARK_PROFILE="development",
               CALLMARK_LIST_MIN_CAPACITY=str(config.list_min_capacity), CALLMARK_PUBLISH_INTERVAL="1",
               CALLMARK_SWEEP_INTERVAL="0", CALLMARK_LOG_LEVEL="WARNING",
               CALLMARK_REDIS_CLUSTER="1" if config.redis_cluster else "")
    return subprocess.Popen([sys.executable, "-m", "blocklist.run.scheduler"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_running_scheduler_publishes_with_the_promoted_key(app, store, config, secret_key):
    old = keys_document(app)["key_id"]
    process = scheduler(config, secret_key)
    try:
        assert wait_for(lambda: publish.list_state(store, "spam").get("key_id") == old)
        assert cli(app, "signing", "rotate").exit_code == 0
        promoted = cli(app, "signing", "rotate", "--promote")
        new = re.search(r"key ([0-9a-f]{16}) now signs", promoted.output).group(1)
        assert wait_for(lambda: all(publish.list_state(store, name).get("key_id") == new
                                    for name in ("spam", "fraud", "ring_once", "allow", "ranges")))
        assert keys_document(app)["key_id"] == new
    finally:
        process.terminate()
        process.wait(timeout=30)


def missing_seed_publishes() -> float:
    return REGISTRY.get_sample_value("callmark_publish_signing_key_missing_total") or 0.0


def test_a_process_without_the_current_seed_refuses_to_publish_and_keeps_the_old_lists(config, tmp_path, caplog):
    old_seed, new_seed = new_seed_text().decode(), new_seed_text().decode()
    key_file = tmp_path / "signing-key"
    key_file.write_text(old_seed)
    config.signing_key_file = str(key_file)  # the seeds come from settings, as in production
    without_next = create_app(config)
    assert keys_document(without_next)["next"] is None  # the service, running before the new seed is deployed
    with_next = create_app(dataclasses.replace(config, signing_next_key=new_seed))
    store, keyring = with_next.extensions["callmark"], with_next.extensions["callmark.signing"]
    publish.publish(store, keyring)
    before = served_manifest(without_next)
    announced = cli(with_next, "signing", "rotate")
    assert announced.exit_code == 0, announced.output
    assert cli(with_next, "signing", "rotate", "--promote").exit_code == 0
    new = signing.SigningKey.from_base64(new_seed).key_id
    assert keys_document(without_next)["key_id"] == new

    failures = missing_seed_publishes()
    with pytest.raises(publish.PublishError, match=f"signs with key {new}, whose seed this process cannot find"):
        publish.publish(store, without_next.extensions["callmark.signing"])
    assert missing_seed_publishes() == failures + 1
    assert any(r.levelname == "ERROR" and "publish refused" in r.getMessage() for r in caplog.records)
    assert served_manifest(without_next) == before  # the old key's lists, which phones trust, stay served
    refused = cli(without_next, "lists", "publish")
    assert refused.exit_code == 1 and "cannot find" in refused.output

    key_file.write_text(new_seed)  # the secret store updates the mounted file: no restart needed
    assert publish.publish(store, without_next.extensions["callmark.signing"])[0].new_version
    assert_verifies_with_advertised_key(with_next)
    assert served_manifest(with_next)["manifest"]["key_id"] == new


def test_a_second_announcement_or_a_promotion_without_one_is_refused(app):
    assert "no key is announced" in cli(app, "signing", "rotate", "--promote").output
    assert cli(app, "signing", "rotate").exit_code == 0
    again = cli(app, "signing", "rotate")
    assert again.exit_code == 1 and "already announced" in again.output


# ---------------------------------------------------------------- retire and revoke

@pytest.fixture
def rotated(app, store):
    """Version 1 signed by the first key, the second key announced: (old key, new key)."""
    keyring = app.extensions["callmark.signing"]
    old = keyring.signer()
    publish.publish(store, keyring)
    new = keyring.announce(publish.iso(store.clock()))
    return old, new


def test_retiring_waits_for_every_list_to_be_re_signed(app, store, rotated):
    old, new = rotated
    assert "signs now" in cli(app, "signing", "retire", old.key_id).output
    assert cli(app, "signing", "rotate", "--promote").exit_code == 0
    refused = cli(app, "signing", "retire")
    assert refused.exit_code == 1 and f"key {old.key_id} still signs" in refused.output
    assert cli(app, "lists", "publish").exit_code == 0
    retired = cli(app, "signing", "retire")
    assert retired.exit_code == 0, retired.output
    assert f"retired key {old.key_id}" in retired.output
    [statement] = keys_document(app)["retired"]
    assert signing.stated_key(statement, signing.RETIREMENT_PURPOSE, {new.key_id: new.public_b64}) == old.key_id
    assert "already retired" in cli(app, "signing", "retire", old.key_id).output


def test_a_phone_drops_a_retired_key_but_keeps_what_it_signed(app, store, rotated, tmp_path):
    old, new = rotated
    phone = str(tmp_path / "phone")
    keyring = app.extensions["callmark.signing"]
    with serve(app) as url:
        for name in ("spam", "fraud"):
            new_client(url, phone).sync_list(name)  # version 1, signed by the old key; learns the new one
        publish.promote(store, keyring)
        publish.publish(store, keyring)
        publish.retire(store, keyring)
        assert new_client(url, phone).sync_list("spam").how == "delta"  # the stored copy is a good base
        trust = load_trust(phone)
        assert (set(trust.keys), set(trust.retired), trust.revoked) == ({new.key_id}, {old.key_id}, set())
        assert lookup(phone, "+8613800138000")["lists"] == []  # fraud, still signed by the old key, is used

        publish.publish(store, old)  # an old key's signature, replayed
        with pytest.raises(SyncError, match=f"key '{old.key_id}', which is retired"):
            new_client(url, phone).sync_list("spam")


def test_revoking_the_signing_key_promotes_the_announced_one_and_re_signs(app, store, rotated):
    old, new = rotated
    revoked = cli(app, "signing", "revoke", old.key_id)
    assert revoked.exit_code == 0, revoked.output
    assert f"key {new.key_id} now signs" in revoked.output and "spam: version 2" in revoked.output
    document = keys_document(app)
    assert document["key_id"] == new.key_id and document["next"] is None
    [statement] = document["revoked"]
    assert signing.stated_key(statement, signing.REVOCATION_PURPOSE, {new.key_id: new.public_b64}) == old.key_id
    assert_verifies_with_advertised_key(app)


def test_a_signing_key_with_no_successor_cannot_be_revoked(app, store):
    current = app.extensions["callmark.signing"].signer()
    refused = cli(app, "signing", "revoke", current.key_id)
    assert refused.exit_code == 1 and "no key is announced" in refused.output
    assert keys_document(app)["revoked"] == []
    assert "not a key of this service" in cli(app, "signing", "revoke", "0123456789abcdef").output


def test_revoking_the_announced_key_withdraws_it_and_a_new_one_can_be_announced(app, store, rotated, config):
    old, new = rotated
    assert cli(app, "signing", "revoke", new.key_id).exit_code == 0
    assert keys_document(app)["next"] is None
    assert not os.path.exists(os.path.join(config.data_dir, NEXT_SIGNING_FILE))
    again = cli(app, "signing", "rotate")
    assert again.exit_code == 0, again.output
    assert new.key_id not in again.output


def test_a_phone_refuses_what_a_revoked_key_signed_and_takes_fresh_snapshots(app, store, rotated, tmp_path):
    old, new = rotated
    phone = str(tmp_path / "phone")
    keyring = app.extensions["callmark.signing"]
    with serve(app) as url:
        for name in ("spam", "fraud"):
            new_client(url, phone).sync_list(name)  # version 1, signed by the old key; learns the new one
        publish.revoke(store, keyring, old.key_id)
        publish.publish(store, keyring)
        result = new_client(url, phone).sync_list("spam")
        assert (result.version, result.how) == (2, "snapshot")  # never a delta on top of a suspect copy
        trust = load_trust(phone)
        assert (set(trust.keys), trust.retired, trust.revoked) == ({new.key_id}, {}, {old.key_id})
        with pytest.raises(SyncError, match="fraud: the local copy is signed by key .*, which is revoked"):
            lookup(phone, "+8613800138000")
        assert new_client(url, phone).sync_list("fraud").how == "snapshot"
        assert lookup(phone, "+8613800138000")["lists"] == []

        publish.publish(store, old)  # the thief signs a version with the stolen key
        with pytest.raises(SyncError, match=f"key '{old.key_id}', which is revoked"):
            new_client(url, phone).sync_list("spam")
        # An app that still ships the revoked key does not bring it back.
        new_client(url, phone, old.public_b64)
        assert old.key_id not in load_trust(phone).keys


def test_a_client_with_every_key_revoked_never_falls_back_to_trust_on_first_use(app, store, tmp_path):
    phone = str(tmp_path / "phone")
    keyring = app.extensions["callmark.signing"]
    only = keyring.signer()
    publish.publish(store, keyring)
    trust = Trust({only.key_id: only.public_b64}, {}, set())
    trust.apply({"revoked": [only.revoke(only.key_id, "2026-09-01T00:00:00Z")]})  # a key may revoke itself
    assert trust.describe() == f"trusted -; retired -; revoked {only.key_id}"
    Path(phone).mkdir()
    Path(phone, KEYS_FILE).write_text(json.dumps({"keys": {}, "retired": {}, "revoked": [only.key_id]}))
    with serve(app) as url:
        with pytest.raises(SyncError, match="no signing key is trusted any more"):
            new_client(url, phone).sync_list("spam")
    assert load_trust(phone).keys == {}


def test_statements_that_do_not_hold_count_for_nothing():
    k, n = signing.SigningKey.from_seed(MANIFEST_SEED), signing.SigningKey.from_seed(NEXT_SEED)
    trusted = {k.key_id: k.public_b64, n.key_id: n.public_b64}
    retirement = n.retire(k.key_id, ISSUED_AT)
    assert signing.stated_key(retirement, signing.RETIREMENT_PURPOSE, trusted) == k.key_id
    assert signing.stated_key(retirement, signing.REVOCATION_PURPOSE, trusted) is None  # purpose checked
    assert signing.stated_key(retirement, signing.RETIREMENT_PURPOSE, {k.key_id: k.public_b64}) is None
    assert signing.stated_key(k.retire(k.key_id, ISSUED_AT), signing.RETIREMENT_PURPOSE, trusted) is None
    forged = {"statement": {**retirement["statement"], "key_id": n.key_id}, "signature": retirement["signature"]}
    assert signing.stated_key(forged, signing.RETIREMENT_PURPOSE, trusted) is None
    assert signing.endorsed_key(retirement, trusted) is None  # a retirement is no endorsement
    for broken in (None, [], {"statement": None}, {"statement": {}, "signature": 1}):
        assert signing.stated_key(broken, signing.REVOCATION_PURPOSE, trusted) is None


# ---------------------------------------------------------------- test vectors (section 5)

MANIFEST_SEED = bytes(range(32))  # TEST ONLY, as in section 9.4
NEXT_SEED = b"\xff" * 32  # TEST ONLY
PUBLISHED_AT = "2026-05-28T09:30:00Z"
ISSUED_AT = "2026-09-01T00:00:00Z"


def canonical_json(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def key_of(seed: bytes) -> tuple[Ed25519PrivateKey, str, str]:
    """Private key, base64 public key and key id of a seed, straight from cryptography."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(raw).decode(), hashlib.sha256(raw).hexdigest()[:16]


def signed(private: Ed25519PrivateKey, statement: dict) -> dict:
    return {"statement": statement, "signature": base64.b64encode(private.sign(canonical_json(statement).encode())).decode()}


def vector_documents() -> dict[str, dict]:
    """The statements and the three keys documents the text of section 5 describes."""
    k_private, k_public, k_id = key_of(MANIFEST_SEED)
    n_private, n_public, n_id = key_of(NEXT_SEED)
    endorsement = signed(k_private, {"purpose": "callmark-signing-key", "algorithm": "ed25519", "key_id": n_id,
                                     "public_key": n_public, "endorsed_by": k_id, "issued_at": PUBLISHED_AT})
    retirement = signed(n_private, {"purpose": "callmark-signing-key-retired", "algorithm": "ed25519",
                                    "key_id": k_id, "signed_by": n_id, "issued_at": ISSUED_AT})
    revocation = signed(n_private, {"purpose": "callmark-signing-key-revoked", "algorithm": "ed25519",
                                    "key_id": k_id, "signed_by": n_id, "issued_at": ISSUED_AT})
    top = {"algorithm": "ed25519", "key_id": n_id, "public_key": n_public, "next": None, "previous": endorsement}
    return {
        "retirement": retirement,
        "revocation": revocation,
        "rotated": {**top, "retired": [retirement], "revoked": []},
        "revoked": {**top, "retired": [], "revoked": [revocation]},
        "announcing": {"algorithm": "ed25519", "key_id": k_id, "public_key": k_public, "next": endorsement,
                       "previous": None, "retired": [], "revoked": []},
    }


def compute_vectors() -> dict[str, str]:
    documents = vector_documents()
    _, k_public, k_id = key_of(MANIFEST_SEED)

    def client_after(*names: str) -> str:
        trust = Trust({k_id: k_public}, {}, set())  # a client that pinned only K
        for name in names:
            trust.apply(documents[name])
        return trust.describe()

    out = {}
    for name in ("retirement", "revocation"):
        out[f"{name}.canonical"] = canonical_json(documents[name]["statement"])
        out[f"{name}.signature"] = documents[name]["signature"]
    out["trust.rotated"] = client_after("rotated")
    out["trust.revoked"] = client_after("revoked")
    out["trust.revoked_then_announcing"] = client_after("revoked", "announcing")
    return out


def document_vectors(text: str) -> dict[str, str]:
    """The `name = value` lines of the ```vectors-keys block of PROTOCOL.md."""
    [block] = re.findall(r"```vectors-keys\n(.*?)```", text, flags=re.S)
    return dict(line.split(" = ", 1) for line in block.splitlines())


def test_protocol_section_5_vectors_match_the_code():
    assert document_vectors(PROTOCOL.read_text(encoding="utf-8")) == compute_vectors()


def test_the_server_signs_the_vector_statements_byte_for_byte():
    documents = vector_documents()
    k, n = signing.SigningKey.from_seed(MANIFEST_SEED), signing.SigningKey.from_seed(NEXT_SEED)
    assert n.retire(k.key_id, ISSUED_AT) == documents["retirement"]
    assert n.revoke(k.key_id, ISSUED_AT) == documents["revocation"]
    assert k.endorse(n, PUBLISHED_AT) == documents["rotated"]["previous"]


if __name__ == "__main__":
    for vector, value in compute_vectors().items():
        print(f"{vector} = {value}")
