"""sync.publish, sync.api and sync.cli on a real Redis: versions, deltas, locking, crashes, HTTP."""

import hashlib
import io
import json
import random
import threading

import pytest
from pybloom_live import BloomFilter

from blocklist import publish
from blocklist.publish import Published
from blocklist.reputation import Vote, cast_votes, lookup, withdraw_vote
from blocklist.web import create_app
from sync import bloom, delta, signing
from tests.support import SMALL_CAPACITY

EXPIRY_HALF_LIVES = 1.6  # a block ends about one half-life after its last report; this is safely past it
LISTS = ("spam", "fraud", "ring_once", "allow", "ranges")


def random_numbers(count: int, rng: random.Random) -> list[str]:
    """Distinct valid Chinese mobile numbers in E.164."""
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(f"+86138{rng.randrange(10**8):08d}")
    return sorted(numbers)


def block(store, numbers: list[str], tag: str = "loan", voters: str = "v") -> None:
    """Three distinct reporters tag each number now: enough to block it."""
    cast_votes(store, [Vote(number=n, tag=tag, voter=f"{voters}{i:07d}", at=store.clock())
                       for n in numbers for i in range(3)])


def expire_blocks(store, clock) -> None:
    """Let time end every block made so far."""
    clock.advance(days=EXPIRY_HALF_LIVES * store.config.half_life_days)


def list_state(store, name: str) -> dict[str, str]:
    return publish.list_state(store, name)


def manifest(store, name: str) -> dict:
    return json.loads(list_state(store, name)["manifest"])


def served_snapshot(store, name: str) -> bytes:
    return store.binary.get(store.keys.list_snapshot(name))


def members(store, name: str) -> set[str]:
    return store.redis.smembers(store.keys.list_members(name))


@pytest.fixture
def http(app):
    return app.test_client()


# --- publishing ---------------------------------------------------------------------------

def test_first_publish_makes_version_1_of_every_list(store, signer):
    results = publish.publish(store, signer)
    assert [(r.list, r.version, r.generation, r.count, r.new_version) for r in results] == [
        (name, 1, 1, 0, True) for name in LISTS]
    for name in LISTS:
        m = manifest(store, name)
        assert m["capacity"] == SMALL_CAPACITY and m["count"] == 0 and m["key_id"] == signer.key_id
        assert signing.verify(signer.public_b64, m, list_state(store, name)["signature"])


def test_publish_with_no_change_makes_no_new_version(store, signer):
    block(store, random_numbers(5, random.Random(1)))
    publish.publish(store, signer)
    before = {name: list_state(store, name) for name in LISTS}
    results = publish.publish(store, signer)
    assert not any(r.new_version for r in results)
    assert {name: list_state(store, name) for name in LISTS} == before


def test_lists_follow_their_rules(store, signer):
    block(store, ["+8613800138000"], tag="fraud")
    block(store, ["+8613800138001"], tag="ring_once")
    block(store, ["+8613800138002"], tag="loan")
    publish.publish(store, signer)
    assert members(store, "spam") == {"+8613800138000", "+8613800138001", "+8613800138002"}
    assert members(store, "fraud") == {"+8613800138000"}
    assert members(store, "ring_once") == {"+8613800138001"}


def test_random_rounds_publish_exact_filters_and_working_deltas(store, signer, clock):
    """Adds, withdrawals and decay: each version equals a fresh build of the blocked numbers,
    loads in pybloom-live, and every retained delta turns its version into the latest."""
    rng = random.Random(7)
    touched: set[str] = set()
    snapshots: dict[int, bytes] = {}  # version -> snapshot, as a phone that synced then would hold
    removed = {"withdrawn": 0, "decayed": 0}
    for round_ in range(8):
        fresh = random_numbers(rng.randrange(5, 60), rng)
        block(store, fresh, voters=f"r{round_}-")
        touched.update(fresh)
        spam = sorted(members(store, "spam"))
        for number in rng.sample(spam, min(len(spam), rng.randrange(0, 10))):
            withdraw_vote(store, number, f"r{round_ - 1}-0000000")  # a voter of last round
        decays = round_ % 3 == 2
        if decays:
            expire_blocks(store, clock)
        result = publish.publish(store, signer)[0]
        removed["decayed" if decays else "withdrawn"] += result.removed

        expected = {n for n in touched if lookup(store, n)["verdict"] == "block"}
        assert members(store, "spam") == expected
        m = manifest(store, "spam")
        data = served_snapshot(store, "spam")
        assert data == bloom.build_snapshot(sorted(expected), m["capacity"], m["error_rate"])
        assert hashlib.sha256(data).hexdigest() == m["sha256"] and len(data) == m["snapshot_bytes"]
        assert m["count"] == len(expected)
        loaded = BloomFilter.fromfile(io.BytesIO(data))
        assert loaded.capacity == m["capacity"] and loaded.count == len(expected)
        assert all(number in loaded for number in expected)

        latest = bloom.parse_snapshot(data).bits
        for version, older in snapshots.items():
            body = store.binary.get(store.keys.list_delta("spam", version))
            if body is None:
                continue
            header, positions = delta.decode(body)
            assert (header.from_version, header.to_version) == (version, m["version"])
            bits = bloom.parse_snapshot(older).bits
            delta.apply(bits, positions)
            assert bits == latest
        snapshots[m["version"]] = data
    assert len(snapshots) >= 6  # most rounds changed the list
    assert removed["withdrawn"] > 0 and removed["decayed"] > 0


def test_list_outgrowing_its_capacity_starts_a_new_generation(config):
    config.list_min_capacity = 100
    app = create_app(config)
    store, (signer, _) = app.extensions["callmark"], app.extensions["callmark.signing"]
    rng = random.Random(3)
    block(store, random_numbers(60, rng))
    publish.publish(store, signer)
    assert (manifest(store, "spam")["generation"], manifest(store, "spam")["capacity"]) == (1, 100)
    block(store, random_numbers(80, rng), voters="w")
    publish.publish(store, signer)
    m = manifest(store, "spam")
    assert m["generation"] == 2 and m["capacity"] >= 2 * m["count"] and m["count"] == 140
    assert bloom.parse_snapshot(served_snapshot(store, "spam")).bits == \
        bloom.build_bits(sorted(members(store, "spam")), bloom.geometry(m["capacity"], m["error_rate"]))
    response = app.test_client().get("/v1/lists/spam/delta?from=1")
    assert response.status_code == 410  # deltas never cross a generation


def test_two_publishers_at_once_make_consecutive_versions(store, signer):
    results: list[Published] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for _ in range(6):
                results.extend(publish.publish(store, signer, wait=30))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publisher) for _ in range(2)]
    for thread in threads:
        thread.start()
    rng = random.Random(11)
    while any(thread.is_alive() for thread in threads):
        block(store, random_numbers(3, rng), voters=f"t{rng.random()}")
    for thread in threads:
        thread.join()
    assert not errors
    versions = sorted(r.version for r in results if r.list == "spam" and r.new_version)
    assert versions == list(range(1, len(versions) + 1))
    m = manifest(store, "spam")
    assert m["version"] == versions[-1]
    spam = sorted(members(store, "spam"))
    assert served_snapshot(store, "spam") == bloom.build_snapshot(spam, m["capacity"], m["error_rate"])


def test_publish_killed_before_commit_leaves_previous_version_served(store, signer, http, monkeypatch):
    block(store, random_numbers(10, random.Random(2)))
    publish.publish(store, signer)
    before = (list_state(store, "spam"), served_snapshot(store, "spam"), members(store, "spam"))
    block(store, ["+8613800138000"], voters="late")

    def killed(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(publish, "_commit", killed)
    with pytest.raises(SystemExit):
        publish.publish(store, signer)
    assert (list_state(store, "spam"), served_snapshot(store, "spam"), members(store, "spam")) == before
    assert http.get("/v1/lists/spam/snapshot").data == before[1]

    monkeypatch.undo()
    results = publish.publish(store, signer)
    assert results[0].version == int(before[0]["version"]) + 1 and results[0].added == 1
    assert "+8613800138000" in members(store, "spam")


def test_commit_with_an_older_fencing_token_is_refused(store, signer):
    publish.publish(store, signer)  # takes fencing token 1
    block(store, ["+8613800138000"])
    publish.publish(store, signer)  # token 2
    block(store, ["+8613800138001"], voters="w")
    with pytest.raises(publish.PublishError, match="STALE"):
        publish.publish_list(store, signer, "spam", fence=1)  # a publisher whose lock expired
    assert manifest(store, "spam")["version"] == 2


# --- the command line ---------------------------------------------------------------------

def test_cli_publish_prints_one_line_per_list(app, store):
    block(store, ["+8613800138000"])
    result = app.test_cli_runner().invoke(args=["lists", "publish"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split(":")[0] for line in lines] == list(LISTS)
    assert lines[0].startswith("spam: version 1 (generation 1), 1 numbers")


def test_cli_publish_fails_when_the_lock_is_held(app, store):
    store.redis.set(store.keys.publish_lock(), "x")
    result = app.test_cli_runner().invoke(args=["lists", "publish", "--wait", "0.5"])
    assert result.exit_code != 0
    assert "another publisher held the lock" in result.output
    assert list_state(store, "spam") == {}


# --- HTTP ---------------------------------------------------------------------------------

@pytest.fixture
def published(store, signer) -> int:
    """spam published three times with changes; returns the latest version."""
    rng = random.Random(5)
    for i in range(3):
        block(store, random_numbers(4, rng), voters=f"h{i}-")
        publish.publish(store, signer)
    return manifest(store, "spam")["version"]


def test_lists_index_shows_each_list(http, published):
    lists = http.get("/v1/lists").get_json()["lists"]
    assert [entry["name"] for entry in lists] == list(LISTS)
    assert lists[0]["version"] == published and lists[0]["count"] == 12 and lists[0]["error_rate"] == 0.001


def test_manifest_body_holds_the_signed_bytes_verbatim(http, store, signer, published):
    response = http.get("/v1/lists/spam/manifest")
    body = response.get_json()
    assert signing.verify(signer.public_b64, body["manifest"], body["signature"])
    assert signing.canonical(body["manifest"]) in response.data
    assert http.get("/v1/lists/spam/manifest", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_delta_from_the_latest_version_is_304(http, published):
    assert http.get(f"/v1/lists/spam/delta?from={published}").status_code == 304


@pytest.mark.parametrize("query", ["from=0", "from=99", "from=1&to=2"])
def test_delta_from_an_unknown_version_or_to_an_old_one_is_410(http, published, query):
    response = http.get(f"/v1/lists/spam/delta?{query}")
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "delta_unavailable"


@pytest.mark.parametrize("path", ["delta?from=abc", "delta?from=-1", "delta?from=1&to=x", "delta", "snapshot?version=1.5"])
def test_non_integer_versions_are_400(http, published, path):
    response = http.get(f"/v1/lists/spam/{path}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_version"


def test_unknown_list_and_old_snapshot_are_404(http, published):
    for path, code in [("nope/manifest", "unknown_list"), (f"spam/snapshot?version={published - 1}", "unknown_version")]:
        response = http.get(f"/v1/lists/{path}")
        assert response.status_code == 404 and response.get_json()["error"]["code"] == code


def test_delta_and_snapshot_are_cacheable_and_answer_if_none_match(http, store, published):
    m = manifest(store, "spam")
    for path, etag in [(f"delta?from=1&to={published}", f'"1-{published}"'),
                       (f"snapshot?version={published}", f'"{m["sha256"]}"')]:
        response = http.get(f"/v1/lists/spam/{path}")
        assert response.status_code == 200
        assert response.headers["ETag"] == etag
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = http.get(f"/v1/lists/spam/{path}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""
    for path in ("delta?from=1", "snapshot"):
        response = http.get(f"/v1/lists/spam/{path}")
        assert response.status_code == 200 and "immutable" not in response.headers["Cache-Control"]
    assert http.get("/v1/lists/spam/snapshot").data == served_snapshot(store, "spam")


def test_versions_beyond_the_retention_get_410(config):
    config.delta_retention = 2
    app = create_app(config)
    store, (signer, _) = app.extensions["callmark"], app.extensions["callmark.signing"]
    rng = random.Random(9)
    for i in range(4):
        block(store, random_numbers(3, rng), voters=f"k{i}-")
        publish.publish(store, signer)
    http = app.test_client()
    assert [http.get(f"/v1/lists/spam/delta?from={v}").status_code for v in (1, 2, 3, 4)] == [410, 200, 200, 304]
    assert store.binary.get(store.keys.list_delta("spam", 1)) is None  # dropped, not just hidden


def test_the_version_being_replaced_keeps_its_delta_however_old(store, signer, clock, http):
    block(store, ["+8613800138000"])
    publish.publish(store, signer)
    clock.advance(days=2 * store.config.delta_retention_days)  # a quiet list: no change for two months
    block(store, ["+8613800138001"], voters="w")
    publish.publish(store, signer)
    assert http.get("/v1/lists/spam/delta?from=1").status_code == 200  # phones that were current stay cheap
