"""sync.client and `python -m sync` against a live server on a real Redis (docs/PROTOCOL.md section 8)."""

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from blocklist import publish
from blocklist.reputation import lookup as reputation
from blocklist.reputation import withdraw_vote
from blocklist.web import create_app
from sync import bloom, signing
from sync.__main__ import main
from sync.client import KEYS_FILE, Client, SyncError, list_path, lookup, read_saved_list
from tests.support import serve
from tests.test_sync_publish import (
    block,
    expire_blocks,
    list_state,
    manifest,
    members,
    random_numbers,
    served_snapshot,
)

REPO = Path(__file__).resolve().parent.parent
FAST_RETRIES = {"attempts": 3, "backoff": 0.01}  # keeps failing-server tests quick


class Failing:
    """WSGI middleware: answers the first `failures` requests with 503, as an overloaded server does."""

    def __init__(self, app, failures: int):
        self.app = app
        self.failures = failures

    def __call__(self, environ, start_response):
        if self.failures > 0:
            self.failures -= 1
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": {"code": "store_unavailable", "message": "busy", "details": {}}}']
        return self.app(environ, start_response)


class Recorder:
    """WSGI middleware: notes each request as ("path?query", status)."""

    def __init__(self, app):
        self.app = app
        self.requests: list[tuple[str, int]] = []

    def __call__(self, environ, start_response):
        target = environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", "")

        def noting(status, headers, *args):
            self.requests.append((target.rstrip("?"), int(status.split()[0])))
            return start_response(status, headers, *args)

        return self.app(environ, noting)


class BeforeRequest:
    """WSGI middleware: runs `hook` once, just before the first request whose path contains `part`."""

    def __init__(self, app, part: str, hook):
        self.app = app
        self.part = part
        self.hook = hook

    def __call__(self, environ, start_response):
        if self.hook and self.part in environ["PATH_INFO"] + "?" + environ.get("QUERY_STRING", ""):
            hook, self.hook = self.hook, None
            hook()
        return self.app(environ, start_response)


@pytest.fixture
def server(app, store, signer) -> Iterator[str]:
    """The app, published once, served over HTTP."""
    publish.publish(store, signer)
    with serve(app) as url:
        yield url


@pytest.fixture
def phone(tmp_path) -> str:
    return str(tmp_path / "phone")


def new_client(url: str, folder: str, key: str | None = None) -> Client:
    return Client(url, folder, key, **FAST_RETRIES)


def file_of(folder: str, name: str = "spam") -> bytes:
    return Path(list_path(folder, name)).read_bytes()


def assert_matches_server(store, folder: str, name: str = "spam") -> None:
    """The phone's bits equal the served snapshot's, and rebuild to the manifest's SHA-256."""
    state, damage = read_saved_list(folder, name, json.loads(Path(folder, KEYS_FILE).read_text())["keys"])
    assert damage is None
    served = manifest(store, name)
    assert state.manifest == served
    assert state.bits == bloom.parse_snapshot(served_snapshot(store, name)).bits
    assert hashlib.sha256(state.snapshot()).hexdigest() == served["sha256"]


# --- the happy path -----------------------------------------------------------------------

def test_first_sync_pins_the_key_and_takes_every_list(server, store, signer, phone):
    block(store, ["+8613800138000"], tag="fraud")
    publish.publish(store, signer)
    client = new_client(server, phone)
    results = [client.sync_list(name) for name in client.list_names()]
    assert [(r.list, r.version, r.how) for r in results] == [
        ("spam", 2, "snapshot"), ("fraud", 2, "snapshot"), ("ring_once", 1, "snapshot"), ("allow", 1, "snapshot"),
        ("ranges", 1, "snapshot")]
    assert json.loads(Path(phone, KEYS_FILE).read_text()) == {"keys": {signer.key_id: signer.public_b64},
                                                             "retired": {}, "revoked": []}
    for name in ("spam", "fraud", "ring_once", "allow", "ranges"):
        assert_matches_server(store, phone, name)
    assert lookup(phone, "138 0013 8000") == {"number": "+8613800138000", "lists": ["fraud", "spam"]}
    assert lookup(phone, "+8613800138001") == {"number": "+8613800138001", "lists": []}
    assert [r.how for r in (client.sync_list("spam"), client.sync_list("fraud"))] == ["up to date"] * 2


def test_command_line_syncs_and_looks_up_offline(server, store, signer, phone, capsys):
    block(store, ["+8613800138000"])
    publish.publish(store, signer)
    assert main(["sync", "--server", server, "--dir", phone, "--list", "spam"]) == 0
    assert capsys.readouterr().out == "spam: version 2 (snapshot 1838 bytes)\n"

    block(store, ["+12025550143"], voters="w")
    publish.publish(store, signer)
    assert main(["sync", "--server", server, "--dir", phone]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("spam: version 3 (delta ") and out[0].endswith(" bytes)")
    assert out[1:] == [f"{name}: version 1 (snapshot 1838 bytes)" for name in ("fraud", "ring_once", "allow", "ranges")]

    assert main(["lookup", "--dir", phone, "13800138000"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"number": "+8613800138000", "lists": ["spam"]}
    assert "read as a number of CN, +8613800138000" in captured.err and "--region" in captured.err
    assert main(["lookup", "--dir", phone, "--region", "US", "(202) 555-0143"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"number": "+12025550143", "lists": ["spam"]} and captured.err == ""
    assert main(["lookup", "--dir", phone, "+12025550143"]) == 0
    assert capsys.readouterr().err == ""  # an E.164 number needs no region
    assert main(["lookup", "--dir", phone, "12"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not" in captured.err


def test_lookup_without_a_synced_copy_says_to_sync_first(tmp_path, capsys):
    for folder in (tmp_path / "nonexistent", tmp_path):
        assert main(["lookup", "--dir", str(folder), "+8613800138000"]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and "no synced lists" in captured.err and "python -m sync sync" in captured.err


def test_python_dash_m_sync_runs_as_a_program(server, store, phone):
    run = subprocess.run([sys.executable, "-m", "sync", "sync", "--server", server, "--dir", phone, "--list", "spam"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "spam: version 1 (snapshot 1838 bytes)\n"
    assert "pinned signing key" in run.stderr


def test_random_rounds_keep_the_phone_equal_to_the_server(server, store, signer, clock, phone):
    """Adds, withdrawn votes and decay: after every round the phone holds the server's exact bits."""
    rng = random.Random(21)
    client = new_client(server, phone)
    client.sync_list("spam")
    touched: set[str] = set()
    hows = []
    for round_ in range(10):
        fresh = random_numbers(rng.randrange(1, 40), rng)
        block(store, fresh, voters=f"r{round_}-")
        touched.update(fresh)
        for number in rng.sample(sorted(members(store, "spam")), min(len(members(store, "spam")), 4)):
            withdraw_vote(store, number, f"r{round_ - 1}-0000001")
        if round_ % 4 == 3:
            expire_blocks(store, clock)
        publish.publish(store, signer)
        result = client.sync_list("spam")
        hows.append(result.how)
        assert result.version == manifest(store, "spam")["version"]
        assert_matches_server(store, phone)
        blocked = {n for n in touched if reputation(store, n)["verdict"] == "block"}
        assert all(lookup(phone, n)["lists"] == ["spam"] for n in blocked)
    assert set(hows) == {"delta"}


# --- refusing what does not verify --------------------------------------------------------

@pytest.fixture
def synced(server, store, signer, phone) -> Client:
    """A phone holding version 2 of spam, with version 3 published since."""
    block(store, random_numbers(20, random.Random(4)))
    publish.publish(store, signer)
    client = new_client(server, phone)
    client.sync_list("spam")
    block(store, random_numbers(5, random.Random(5)), voters="w")
    publish.publish(store, signer)
    return client


def tamper(store, name: str = "spam", **changes) -> None:
    """Change the served manifest of a list but keep its signature."""
    m = {**manifest(store, name), **changes}
    store.redis.hset(store.keys.list_state(name), "manifest", json.dumps(m, sort_keys=True, separators=(",", ":")))


@pytest.mark.parametrize("attack,reason", [
    (lambda store: tamper(store, count=3), "signature does not verify"),
    (lambda store: tamper(store, sha256="0" * 64), "signature does not verify"),
    (lambda store: store.redis.hset(store.keys.list_state("spam"), "signature", base64.b64encode(bytes(64)).decode()),
     "signature does not verify"),
    (lambda store: store.redis.hset(store.keys.list_state("spam"), mapping={
        field: list_state(store, "fraud")[field] for field in ("manifest", "signature")}),
     "for list 'fraud', not 'spam'"),
    (lambda store: store.redis.hset(store.keys.list_state("spam"), mapping={
        "manifest": json.dumps(json.loads(list_state(store, "fraud")["manifest"]) | {"list": "spam"},
                               sort_keys=True, separators=(",", ":")),
        "signature": list_state(store, "fraud")["signature"]}),
     "signature does not verify"),
])
def test_a_tampered_manifest_is_refused_and_the_old_copy_kept(synced, store, phone, attack, reason):
    before = file_of(phone)
    attack(store)
    with pytest.raises(SyncError, match=reason) as refused:
        synced.sync_list("spam")
    assert "kept version 2" in str(refused.value)
    assert file_of(phone) == before


def test_an_older_version_is_refused(synced, store, signer, phone):
    synced.sync_list("spam")
    old = {**manifest(store, "spam"), "version": 1}  # a replayed, older manifest, validly signed
    store.redis.hset(store.keys.list_state("spam"), "version", 1)  # so the ETag differs and no 304 hides it
    store.redis.hset(store.keys.list_state("spam"), mapping={
        "manifest": json.dumps(old, sort_keys=True, separators=(",", ":")), "signature": signer.sign(old)})
    with pytest.raises(SyncError, match="older than version 3"):
        synced.sync_list("spam")


def test_a_wrong_pinned_key_is_refused(server, store, phone, capsys):
    unrelated = signing.SigningKey.from_seed(os.urandom(32)).public_b64
    assert main(["sync", "--server", server, "--dir", phone, "--key", unrelated]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "spam: refused: the manifest is signed by key" in captured.err and "not trusted" in captured.err
    assert not os.path.exists(list_path(phone, "spam"))


@pytest.mark.parametrize("corrupt", [
    lambda body: body[:-1],  # truncated
    lambda body: body[:len(body) // 2],
    lambda body: body[:-3] + bytes([body[-3] ^ 0x10]) + body[-2:],  # a bit flipped in the positions
    lambda body: body[:20] + bytes([body[20] ^ 0x01]) + body[21:],  # a bit flipped in the header's SHA-256
    lambda body: body + b"\0",  # trailing garbage
])
def test_a_corrupted_delta_falls_back_to_the_snapshot(synced, store, phone, corrupt):
    key = store.keys.list_delta("spam", 2)
    store.binary.set(key, corrupt(store.binary.get(key)))
    result = synced.sync_list("spam")
    assert (result.version, result.how) == (3, "snapshot")
    assert_matches_server(store, phone)


@pytest.mark.parametrize("damage", [
    lambda data: data[:-1],  # truncated filter
    lambda data: data[:-100] + bytes([data[-100] ^ 0x04]) + data[-99:],  # one flipped filter bit
    lambda data: data.replace(b'"version":2', b'"version":9'),  # edited manifest
    lambda data: b"",
    lambda data: b"\x00" * 64,
])
def test_a_damaged_local_copy_is_refused_by_lookup_and_repaired_by_sync(synced, store, phone, damage):
    path = list_path(phone, "spam")
    Path(path).write_bytes(damage(Path(path).read_bytes()))
    with pytest.raises(SyncError, match="damaged"):
        lookup(phone, "+8613800138000")
    result = synced.sync_list("spam")
    assert (result.version, result.how) == (3, "snapshot")
    assert_matches_server(store, phone)


def test_a_damaged_keys_file_is_not_silently_replaced(synced, server, phone):
    Path(phone, KEYS_FILE).write_text("{")
    with pytest.raises(SyncError, match="damaged"):
        new_client(server, phone)


# --- key rotation -------------------------------------------------------------------------

def test_a_key_rotation_is_followed_and_an_unendorsed_key_refused(app, store, phone, tmp_path):
    keyring = app.extensions["callmark.signing"]
    old = keyring.signer()
    publish.publish(store, keyring)
    late_phone = str(tmp_path / "late")
    Client("http://127.0.0.1:9", late_phone, old.public_b64)  # an app shipping the old key pins it offline
    assert set(json.loads(Path(late_phone, KEYS_FILE).read_text())["keys"]) == {old.key_id}
    with serve(app) as url:
        assert new_client(url, phone).sync_list("spam").version == 1
        upcoming = keyring.announce(publish.iso(store.clock()))
        assert new_client(url, phone).sync_list("spam").how == "up to date"
        # Learnt from the endorsement in `next`, before the switch.
        assert set(json.loads(Path(phone, KEYS_FILE).read_text())["keys"]) == {old.key_id, upcoming.key_id}

        assert publish.promote(store, keyring).key_id == upcoming.key_id
        results = publish.publish(store, keyring)
        assert results[0].version == 2 and manifest(store, "spam")["key_id"] == upcoming.key_id  # re-signed
        assert new_client(url, phone).sync_list("spam").how == "delta"
        # A phone that pinned only the old key follows the endorsement now in `previous`.
        assert new_client(url, late_phone).sync_list("spam").version == 2
        assert set(json.loads(Path(late_phone, KEYS_FILE).read_text())["keys"]) == {old.key_id, upcoming.key_id}
        stranger = str(tmp_path / "stranger")
        with pytest.raises(SyncError, match="not trusted"):
            new_client(url, stranger, signing.SigningKey.from_seed(os.urandom(32)).public_b64).sync_list("spam")

        publish.publish(store, signing.SigningKey.from_seed(os.urandom(32)))  # a key nobody endorsed
        before = file_of(phone)
        with pytest.raises(SyncError, match="not trusted.*kept version 2"):
            new_client(url, phone).sync_list("spam")
    assert file_of(phone) == before


# --- falling behind -----------------------------------------------------------------------

def test_a_phone_a_month_behind_gets_one_delta(config, clock, phone):
    config.delta_retention = 10_000
    app = create_app(config)
    store, (signer, _) = app.extensions["callmark"], app.extensions["callmark.signing"]
    rng = random.Random(8)
    block(store, random_numbers(10, rng))
    publish.publish(store, signer)
    recorder = Recorder(app)
    with serve(recorder) as url:
        client = new_client(url, phone)
        client.sync_list("spam")
        for day in range(30):
            clock.advance(days=1)
            block(store, random_numbers(5, rng), voters=f"d{day}-")
            publish.publish(store, signer)
        recorder.requests.clear()
        result = client.sync_list("spam")
    assert (result.version, result.how) == (31, "delta")
    assert [r for r in recorder.requests if "/delta" in r[0] or "/snapshot" in r[0]] == [
        ("/v1/lists/spam/delta?from=1&to=31", 200)]
    assert_matches_server(store, phone)


def test_a_phone_beyond_the_retention_gets_410_then_the_snapshot(config, clock, phone):
    app = create_app(config)
    store, (signer, _) = app.extensions["callmark"], app.extensions["callmark.signing"]
    block(store, ["+8613800138000"])
    publish.publish(store, signer)
    with serve(app) as url:
        client = new_client(url, phone)
        client.sync_list("spam")
        block(store, ["+8613800138001"], voters="w")
        publish.publish(store, signer)  # version 1 stops being the latest now ...
        clock.advance(days=config.delta_retention_days + 1)
        block(store, ["+8613800138002"], voters="x")
        publish.publish(store, signer)  # ... and is older than the retention by this publish
        http = app.test_client()
        assert [http.get(f"/v1/lists/spam/delta?from={v}").status_code for v in (1, 2)] == [410, 200]
        result = client.sync_list("spam")
    assert (result.version, result.how) == (3, "snapshot")
    assert_matches_server(store, phone)


def test_a_new_generation_makes_the_phone_take_the_snapshot(config, phone):
    config.list_min_capacity = 100
    app = create_app(config)
    store, (signer, _) = app.extensions["callmark"], app.extensions["callmark.signing"]
    rng = random.Random(6)
    block(store, random_numbers(60, rng))
    publish.publish(store, signer)
    with serve(app) as url:
        client = new_client(url, phone)
        client.sync_list("spam")
        block(store, random_numbers(80, rng), voters="w")
        publish.publish(store, signer)
        assert manifest(store, "spam")["generation"] == 2
        result = client.sync_list("spam")
    assert (result.version, result.how) == (2, "snapshot")
    assert_matches_server(store, phone)
    assert lookup(phone, sorted(members(store, "spam"))[0])["lists"] == ["spam"]


def test_a_publish_between_manifest_and_download_restarts_from_the_manifest(app, store, signer, phone):
    publish.publish(store, signer)

    def publish_more() -> None:
        block(store, ["+8613800138000"])
        publish.publish(store, signer)

    with serve(BeforeRequest(app, "snapshot", publish_more)) as url:
        result = new_client(url, phone).sync_list("spam")
    assert (result.version, result.how) == (2, "snapshot")
    assert_matches_server(store, phone)


def test_a_publish_between_manifest_and_delta_restarts_from_the_manifest(synced, app, store, signer, phone):
    def publish_more() -> None:
        block(store, ["+8613800138000"], voters="late")
        publish.publish(store, signer)

    recorder = Recorder(BeforeRequest(app, "delta", publish_more))
    with serve(recorder) as url:
        result = new_client(url, phone).sync_list("spam")
    assert (result.version, result.how) == (4, "delta")
    assert [r for r in recorder.requests if "/keys/" not in r[0]] == [
        ("/v1/lists/spam/manifest", 200),
        ("/v1/lists/spam/delta?from=2&to=3", 410),  # version 4 came out meanwhile
        ("/v1/lists/spam/snapshot?version=3", 404),  # not kept: start again
        ("/v1/lists/spam/manifest", 200),
        ("/v1/lists/spam/delta?from=2&to=4", 200),
    ]
    assert_matches_server(store, phone)


def test_an_unchanged_list_costs_one_conditional_manifest_request(app, store, signer, phone):
    publish.publish(store, signer)
    recorder = Recorder(app)
    with serve(recorder) as url:
        client = new_client(url, phone)
        client.sync_list("spam")
        recorder.requests.clear()
        assert client.sync_list("spam").how == "up to date"
    assert recorder.requests == [("/v1/lists/spam/manifest", 304)]


# --- an unreliable server -----------------------------------------------------------------

def test_server_errors_are_retried_with_growing_delays(app, store, signer, phone):
    publish.publish(store, signer)
    delays: list[float] = []
    with serve(Failing(app, failures=3)) as url:
        client = Client(url, phone, attempts=4, backoff=0.01, sleep=delays.append)
        assert client.sync_list("spam").how == "snapshot"
    assert delays == [0.01, 0.02, 0.04]


def test_a_server_that_keeps_failing_leaves_the_copy_alone(synced, app, phone):
    before = file_of(phone)
    with serve(Failing(app, failures=10**6)) as url:
        client = Client(url, phone, attempts=3, backoff=0.01, sleep=lambda _: None)
        with pytest.raises(SyncError, match="failed 3 times.*HTTP 503: busy"):
            client.sync_list("spam")
    assert file_of(phone) == before
    unreachable = Client("http://127.0.0.1:9", phone, attempts=2, backoff=0.01, sleep=lambda _: None)
    with pytest.raises(SyncError, match="failed 2 times"):
        unreachable.sync_list("spam")
    assert file_of(phone) == before


def test_online_lookup_asks_by_prefix_and_finds_its_own_number(server, store, signer, phone, capsys):
    block(store, ["+8613800138000"])
    publish.publish(store, signer)
    token = create_app_token(server)
    assert main(["sync", "--server", server, "--dir", phone, "--list", "spam"]) == 0
    capsys.readouterr()
    assert main(["lookup", "--dir", phone, "--online", "--server", server, "--token", token, "13800138000"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["lists"] == ["spam"]
    assert answer["online"]["verdict"] == "block" and answer["online"]["reporters"] == 3
    # A number nobody marked: asked all the same (hit or not), and the answer is empty.
    assert main(["lookup", "--dir", phone, "--online", "--server", server, "--token", token, "13900139000"]) == 0
    assert json.loads(capsys.readouterr().out) == {"number": "+8613900139000", "lists": [], "online": None}
    assert main(["lookup", "--dir", phone, "--online", "13900139000"]) == 2


def create_app_token(server: str) -> str:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(server + "/v1/devices", method="POST")) as reply:
        return json.loads(reply.read())["token"]
