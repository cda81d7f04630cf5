"""Operators correct the crowd: overrides win everywhere and are audited; owners' disputes."""
from __future__ import annotations

import base64
import os
from contextlib import contextmanager
from typing import Iterator

import pytest
import redis
from redis.crc import key_slot

from blocklist import apikeys, moderation
from blocklist.errors import Conflict
from blocklist.publish import publish
from blocklist.reputation import Vote, cast_votes, iso_unix, lookup, published_state
from blocklist.web import create_app
from tests.support import assert_error, redis_state

NUMBER = "+8613800138000"
OTHER = "+8613900139000"


def stored(r) -> dict:
    """Everything in Redis but the API keys' last-used times, which any authenticated call may move."""
    state = redis_state(r)
    state.pop("cm:apikeys:used", None)
    return state


def vote(store, number: str, tag: str, count: int, first_voter: int = 0) -> None:
    cast_votes(store, [Vote(number=number, tag=tag, voter=f"v{i:07d}", at=store.clock())
                       for i in range(first_voter, first_voter + count)])


@pytest.fixture
def admin(store) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, 'ops-alice', 'admin')}"}


@pytest.fixture
def vendor(store) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}


def number_of(client, headers, number: str = NUMBER) -> dict:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def override(client, admin, verdict: str, reason: str = "verified bank hotline", number: str = NUMBER):
    return client.put(f"/v1/admin/numbers/{number}/override", headers=admin,
                      json={"verdict": verdict, "reason": reason})


def feed_cursor(client, vendor) -> str:
    cursor = None
    while True:
        body = client.get("/v1/feed", query_string={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                          headers=vendor).get_json()
        cursor = body["next_cursor"]
        if not body["changes"]:
            return cursor


def feed_since(client, vendor, cursor: str) -> list[dict]:
    return client.get("/v1/feed", query_string={"cursor": cursor, "limit": 1000}, headers=vendor).get_json()["changes"]


def publish_now(app) -> None:
    signer, _ = app.extensions["callmark.signing"]
    assert publish(app.extensions["callmark"], signer) is not None


def in_spam_list(store, number: str) -> bool:
    return bool(store.redis.sismember(store.keys.list_members("spam"), number))


# --- overrides ----------------------------------------------------------------------------------

def test_allow_override_wins_over_a_block_in_the_number_lookup(client, store, admin, vendor):
    vote(store, NUMBER, "fraud", 5)
    assert number_of(client, vendor)["verdict"] == "block"
    response = override(client, admin, "allow")
    assert response.status_code == 200
    assert response.get_json()["verdict"] == "allow"
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["label"], shown["override"], shown["lists"]) == ("allow", "safe", "allow", ["allow"])
    assert shown["reporters"] == 5  # the crowd's evidence is still there


def test_allow_override_holds_against_new_spam_reports(client, store, admin, vendor):
    override(client, admin, "allow")
    vote(store, NUMBER, "fraud", 20)
    assert number_of(client, vendor)["verdict"] == "allow"


def test_block_override_blocks_a_number_without_reports(client, store, admin, device):
    response = override(client, admin, "block", "confirmed fraud ring")
    assert response.get_json()["verdict"] == "block"
    shown = number_of(client, device)
    assert (shown["verdict"], shown["override"], shown["lists"]) == ("block", "block", ["spam"])


def test_override_reaches_the_feed_at_once(client, store, admin, vendor):
    vote(store, NUMBER, "fraud", 5)
    cursor = feed_cursor(client, vendor)
    override(client, admin, "allow")
    changes = feed_since(client, vendor, cursor)
    assert [(c["number"], c["verdict"], c["label"], c["lists"]) for c in changes] == [(NUMBER, "allow", "safe", ["allow"])]


def test_overrides_reach_the_lists_at_the_next_publish(app, client, store, admin):
    vote(store, NUMBER, "fraud", 5)
    publish_now(app)
    assert in_spam_list(store, NUMBER)
    assert not in_spam_list(store, OTHER)
    override(client, admin, "allow")
    override(client, admin, "block", "confirmed fraud ring", number=OTHER)
    assert in_spam_list(store, NUMBER)  # lists change only when published
    publish_now(app)
    assert not in_spam_list(store, NUMBER)
    assert in_spam_list(store, OTHER)
    assert not store.redis.sismember(store.keys.list_members("fraud"), NUMBER)


def test_clearing_an_override_gives_the_crowd_back_its_say(app, client, store, admin, vendor):
    vote(store, NUMBER, "fraud", 5)
    override(client, admin, "allow")
    publish_now(app)
    cursor = feed_cursor(client, vendor)
    response = client.delete(f"/v1/admin/numbers/{NUMBER}/override", headers=admin, json={"reason": "bank moved"})
    assert response.status_code == 200
    assert response.get_json()["verdict"] == "block"
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["override"]) == ("block", None)
    assert [(c["verdict"], c["label"]) for c in feed_since(client, vendor, cursor)] == [("block", "fraud")]
    publish_now(app)
    assert in_spam_list(store, NUMBER)


def test_clearing_the_only_evidence_leaves_no_number_behind(client, store, admin, vendor, redis_client):
    override(client, admin, "block", "test")
    assert client.delete(f"/v1/admin/numbers/{NUMBER}/override", headers=admin).status_code == 200
    assert number_of(client, vendor)["verdict"] == "unknown"
    assert redis_client.exists(store.keys.number(NUMBER)) == 0


def test_every_override_is_audited_with_who_when_and_why(client, store, admin, clock):
    override(client, admin, "allow", "verified bank hotline")
    clock.advance(seconds=90)
    client.delete(f"/v1/admin/numbers/{NUMBER}/override", headers=admin, json={"reason": "contract ended"})
    override(client, admin, "block", "other number", number=OTHER)
    response = client.get("/v1/admin/audit", query_string={"number": NUMBER}, headers=admin)
    assert response.status_code == 200
    entries = response.get_json()["entries"]
    assert [(e["action"], e["number"], e["by"], e["reason"], e["at"]) for e in entries] == [
        ("override_cleared", NUMBER, "ops-alice", "contract ended", iso_unix(int(clock.now))),
        ("override", NUMBER, "ops-alice", "verified bank hotline", iso_unix(int(clock.now) - 90)),
    ]
    assert entries[1]["verdict"] == "allow"
    everything = client.get("/v1/admin/audit", headers=admin).get_json()["entries"]
    assert [e["number"] for e in everything] == [OTHER, NUMBER, NUMBER]


def test_the_audit_names_the_key_that_acted(client, store, admin):
    other_admin = {"Authorization": f"Bearer {apikeys.create(store, 'ops-bob', 'admin')}"}
    override(client, admin, "allow")
    override(client, other_admin, "block", "changed my mind")
    entries = client.get("/v1/admin/audit", headers=admin).get_json()["entries"]
    assert [(e["by"], e["verdict"]) for e in entries] == [("ops-bob", "block"), ("ops-alice", "allow")]


@pytest.mark.parametrize("body", [
    {"verdict": "warn", "reason": "x"},
    {"verdict": "allow"},
    {"verdict": "allow", "reason": ""},
    {"verdict": "allow", "reason": "x", "extra": 1},
    {"verdict": None, "reason": "x"},
])
def test_a_bad_override_is_400_and_writes_nothing(client, admin, redis_client, body):
    before = stored(redis_client)
    response = client.put(f"/v1/admin/numbers/{NUMBER}/override", headers=admin, json=body)
    assert_error(response, 400, "validation_error")
    assert stored(redis_client) == before


def test_an_override_of_an_invalid_number_is_400_and_writes_nothing(client, admin, redis_client):
    before = stored(redis_client)
    assert_error(override(client, admin, "allow", number="12"), 400, "invalid_number")
    assert stored(redis_client) == before


def test_an_override_accepts_the_national_format(client, store, admin, vendor):
    override(client, admin, "block", "x", number="13800138000")
    assert number_of(client, vendor)["override"] == "block"


# --- disputes -----------------------------------------------------------------------------------

def dispute(client, device, number: str = NUMBER, reason: str = "this is my shop's line"):
    return client.post("/v1/disputes", headers=device,
                       json={"number": number, "reason": reason, "contact": "owner@example.com"})


def test_an_open_dispute_is_shown_and_leaves_the_block_in_place(client, store, device, vendor):
    response = dispute(client, device)
    assert response.status_code == 201
    body = response.get_json()
    assert body["number"] == NUMBER and body["status"] == "open" and body["dispute_id"]
    vote(store, NUMBER, "fraud", 5)
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["disputed"], shown["reporters"], shown["lists"]) == ("block", True, 5, ["spam", "fraud"])


def test_opening_a_dispute_of_a_blocked_number_changes_nothing_in_the_feed(client, store, device, vendor):
    vote(store, NUMBER, "fraud", 5)
    cursor = feed_cursor(client, vendor)
    assert dispute(client, device).status_code == 201
    assert feed_since(client, vendor, cursor) == []
    assert number_of(client, vendor)["verdict"] == "block"


def test_in_production_a_fresh_device_cannot_unblock_a_number_by_disputing_it(config, vendor):
    production = create_app(config.replace(profile="production", rate_limits={},
                                           signing_key=base64.b64encode(os.urandom(32)).decode()))
    client, store = production.test_client(), production.extensions["callmark"]
    cast_votes(store, [Vote(number=NUMBER, tag="fraud", voter=f"v{i:07d}", at=store.clock(), network=i + 1)
                       for i in range(5)])
    assert number_of(client, vendor)["verdict"] == "block"
    cursor = feed_cursor(client, vendor)
    fresh = client.post("/v1/devices").get_json()["token"]
    assert dispute(client, {"Authorization": f"Bearer {fresh}"}).status_code == 201
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["disputed"], shown["lists"]) == ("block", True, ["spam", "fraud"])
    assert feed_since(client, vendor, cursor) == []


def test_a_second_dispute_of_the_same_number_is_409(client, device, new_device):
    first = dispute(client, device).get_json()
    error = assert_error(dispute(client, new_device(), reason="me too"), 409, "conflict")
    assert error["details"]["dispute_id"] == first["dispute_id"]


def test_a_dispute_needs_a_device_token(client, admin, redis_client):
    before = stored(redis_client)
    assert_error(dispute(client, {}), 401, "unauthorized")
    assert_error(dispute(client, admin), 401, "unauthorized")
    assert stored(redis_client) == before


@pytest.mark.parametrize("body", [
    {"number": NUMBER, "reason": "x"},
    {"number": NUMBER, "contact": "owner@example.com"},
    {"number": NUMBER, "reason": "", "contact": "owner@example.com"},
    {"number": NUMBER, "reason": "x", "contact": "a"},
    {"number": "not a number", "reason": "x", "contact": "owner@example.com"},
])
def test_a_bad_dispute_is_400_and_writes_nothing(client, device, redis_client, body):
    before = stored(redis_client)
    response = client.post("/v1/disputes", headers=device, json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("validation_error", "invalid_number")
    assert stored(redis_client) == before


def test_open_disputes_are_listed_for_operators(client, store, device, admin):
    vote(store, NUMBER, "fraud", 5)
    opened = dispute(client, device).get_json()
    listed = client.get("/v1/admin/disputes", headers=admin).get_json()["disputes"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["dispute_id"] == opened["dispute_id"]
    assert (entry["number"], entry["reason"], entry["contact"], entry["status"]) == \
        (NUMBER, "this is my shop's line", "owner@example.com", "open")
    assert entry["reputation"]["verdict"] == "block"


def resolve(client, admin, dispute_id: str, override_to, note: str = "checked the business licence"):
    return client.post(f"/v1/admin/disputes/{dispute_id}/resolve", headers=admin,
                       json={"override": override_to, "note": note})


def test_resolving_with_allow_pins_the_number_to_allow(client, store, device, admin, vendor):
    vote(store, NUMBER, "fraud", 5)
    dispute_id = dispute(client, device).get_json()["dispute_id"]
    response = resolve(client, admin, dispute_id, "allow")
    assert response.status_code == 200
    assert response.get_json()["status"] == "resolved"
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["override"], shown["disputed"]) == ("allow", "allow", False)
    assert client.get("/v1/admin/disputes", headers=admin).get_json()["disputes"] == []
    actions = [(e["action"], e["by"]) for e in
               client.get("/v1/admin/audit", query_string={"number": NUMBER}, headers=admin).get_json()["entries"]]
    assert actions == [("dispute_resolved", "ops-alice"), ("override", "ops-alice")]


def test_resolving_without_override_leaves_the_crowds_verdict(client, store, device, admin, vendor):
    vote(store, NUMBER, "fraud", 5)
    dispute_id = dispute(client, device).get_json()["dispute_id"]
    cursor = feed_cursor(client, vendor)
    assert resolve(client, admin, dispute_id, None).status_code == 200
    shown = number_of(client, vendor)
    assert (shown["verdict"], shown["override"], shown["disputed"]) == ("block", None, False)
    assert feed_since(client, vendor, cursor) == []


def test_resolving_twice_is_409(client, device, admin):
    dispute_id = dispute(client, device).get_json()["dispute_id"]
    assert resolve(client, admin, dispute_id, None).status_code == 200
    assert_error(resolve(client, admin, dispute_id, "allow"), 409, "conflict")


def test_a_resolved_number_may_be_disputed_again(client, device, admin):
    dispute_id = dispute(client, device).get_json()["dispute_id"]
    resolve(client, admin, dispute_id, None)
    assert dispute(client, device).status_code == 201


def test_resolving_an_unknown_dispute_is_404(client, admin):
    assert_error(resolve(client, admin, "0123456789abcdef", None), 404, "not_found")


def test_resolving_with_a_bad_override_is_400_and_keeps_the_dispute_open(client, device, admin, redis_client):
    dispute_id = dispute(client, device).get_json()["dispute_id"]
    before = stored(redis_client)
    assert_error(resolve(client, admin, dispute_id, "warn"), 400, "validation_error")
    assert stored(redis_client) == before


@pytest.mark.parametrize("dispute_id", ["0123456789abcdef", "x-0123456789abcdef", "99999-0123456789abcdef",
                                        "1-0123", "1-0123456789ABCDEF", "-1-0123456789abcdef"])
def test_resolving_a_malformed_dispute_id_is_404_and_writes_nothing(client, admin, redis_client, dispute_id):
    before = stored(redis_client)
    assert_error(resolve(client, admin, dispute_id, None), 404, "not_found")
    assert stored(redis_client) == before


def test_a_dispute_id_starts_with_the_bucket_of_its_number(client, store, device):
    for number in (NUMBER, OTHER):
        dispute_id = dispute(client, device, number).get_json()["dispute_id"]
        bucket, _, rest = dispute_id.partition("-")
        assert (bucket, len(rest)) == (str(store.keys.bucket_of(number)), 16)


# --- listings merge the buckets ---------------------------------------------------------------

def numbers_in_distinct_buckets(store, count: int) -> list[str]:
    found: dict[int, str] = {}
    for i in range(1000):
        number = f"+86137{i:08d}"
        found.setdefault(store.keys.bucket_of(number), number)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("not enough buckets")


def test_the_audit_log_merges_every_bucket_newest_first_up_to_the_limit(client, store, admin):
    numbers = numbers_in_distinct_buckets(store, 5)
    for number in numbers:
        assert override(client, admin, "block", f"ring {number}", number=number).status_code == 200
    entries = client.get("/v1/admin/audit", query_string={"limit": 3}, headers=admin).get_json()["entries"]
    assert [e["number"] for e in entries] == numbers[::-1][:3]
    assert [e["reason"] for e in entries] == [f"ring {n}" for n in numbers[::-1][:3]]


def test_open_disputes_of_every_bucket_are_listed_oldest_first(client, store, device, admin, clock):
    numbers = numbers_in_distinct_buckets(store, 4)
    opened = []
    for number in numbers:
        opened.append(dispute(client, device, number).get_json()["dispute_id"])
        clock.advance(seconds=1)
    listed = client.get("/v1/admin/disputes", headers=admin).get_json()["disputes"]
    assert [(d["dispute_id"], d["number"]) for d in listed] == list(zip(opened, numbers))
    resolve(client, admin, opened[1], None)
    listed = client.get("/v1/admin/disputes", headers=admin).get_json()["disputes"]
    assert [d["dispute_id"] for d in listed] == [opened[0], *opened[2:]]


# --- every step is one script: no crash leaves it half done -------------------------------------

class Crash(redis.ConnectionError):
    """The process died before it could send this command."""


@contextmanager
def crashing(store, after: int | None = None) -> Iterator[list[tuple]]:
    """Commands the store's client sends, recorded; with `after`, it dies before sending any
    command past that many (the way a killed worker stops between two round trips)."""
    sent: list[tuple] = []
    real = store.redis.execute_command

    def execute(*args, **options):
        if after is not None and len(sent) >= after:
            raise Crash(f"died before {args[0]}")
        sent.append(args)
        return real(*args, **options)

    store.redis.execute_command = execute
    try:
        yield sent
    finally:
        del store.redis.execute_command


def blocked(store, number: str) -> dict:
    vote(store, number, "fraud", 5)
    return {}


def held(store, number: str) -> dict:
    cast_votes(store, [Vote(number=number, tag="fraud", voter=f"v{i:07d}", at=store.clock(), fresh=True)
                       for i in range(10)])
    assert lookup(store, number)["held"]
    return {}


def disputed(store, number: str) -> dict:
    blocked(store, number)
    return {"dispute_id": moderation.open_dispute(store, number, "my shop", "owner@example.com")["dispute_id"]}


def overridden(store, number: str) -> dict:
    blocked(store, number)
    moderation.set_override(store, number, "allow", "bank hotline", "ops")
    return {}


STEPS = {  # name -> (the state before, the step)
    "open a dispute": (blocked, lambda store, n, _: moderation.open_dispute(store, n, "my shop", "me@example.com")),
    "resolve with allow": (disputed, lambda store, n, c: moderation.resolve_dispute(store, c["dispute_id"], "allow",
                                                                                     "licence checked", "ops")),
    "resolve, no override": (disputed, lambda store, n, c: moderation.resolve_dispute(store, c["dispute_id"], None,
                                                                                       "not ours to pin", "ops")),
    "set an override": (blocked, lambda store, n, _: moderation.set_override(store, n, "allow", "bank", "ops")),
    "clear an override": (overridden, lambda store, n, _: moderation.set_override(store, n, None, "moved", "ops")),
    "release a hold": (held, lambda store, n, _: moderation.release_hold(store, n, "a real wave", "ops")),
}


def assert_consistent(store, number: str, context: dict) -> None:
    """What no crash may leave: a dispute flag, record and listing that disagree; an override,
    release or resolution without its audit entry, or an entry without it; a published state
    other than the verdict."""
    shown = lookup(store, number)
    open_ones = [d for d in moderation.open_disputes(store, 1000) if d["number"] == number]
    assert len(open_ones) <= 1
    assert shown["disputed"] == bool(open_ones)
    entries = moderation.audit_log(store, number, 1000)
    latest = next((e for e in entries if e["action"] in ("override", "override_cleared")), None)
    assert shown["override"] == ((latest["verdict"] or None) if latest else None)
    if "dispute_id" in context:
        resolved = [e for e in entries if e["action"] == "dispute_resolved" and e["dispute_id"] == context["dispute_id"]]
        assert len(resolved) == (0 if open_ones else 1)
    if any(e["action"] == "hold_released" for e in entries):
        assert not shown["held"]
    elif "release" in context:
        assert shown["held"]
    state = store.redis.hget(store.keys.number(number), "v")
    assert published_state(int(state or 0)) == (shown["verdict"], shown["label"])
    # A number that shows no open dispute takes a new one (nothing points at a lost record).
    if open_ones:
        with pytest.raises(Conflict):
            moderation.open_dispute(store, number, "again", "me@example.com")
    else:
        moderation.open_dispute(store, number, "again", "me@example.com")


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_anywhere_in_a_step_leaves_the_number_consistent(store, step):
    before, act = STEPS[step]
    for after in range(20):
        number = f"+861380013{after:04d}"
        context = {**before(store, number), **({"release": True} if step == "release a hold" else {})}
        with crashing(store, after):
            try:
                act(store, number, context)
                finished = True
            except Crash:
                finished = False
        assert_consistent(store, number, context)
        if finished:
            return
    raise AssertionError("the step never finished")


READS = {"GET", "HGET", "HMGET", "HGETALL", "EXISTS", "ZRANGE", "XREVRANGE", "SCRIPT LOAD", "SCRIPT"}


@pytest.mark.parametrize("step", STEPS)
def test_each_step_writes_in_one_script_whose_keys_share_the_numbers_slot(store, step):
    before, act = STEPS[step]
    context = before(store, NUMBER)
    with crashing(store) as sent:
        act(store, NUMBER, context)
    scripts = [args for args in sent if args[0] in ("EVALSHA", "EVAL")]
    assert len(scripts) == 1, sent
    assert {args[0] for args in sent if args[0] not in ("EVALSHA", "EVAL")} <= READS, sent
    keys = scripts[0][3:3 + int(scripts[0][2])]
    assert {key_slot(key.encode()) for key in keys} == {key_slot(store.keys.number(NUMBER).encode())}

