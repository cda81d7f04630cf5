"""Operators correct the crowd: overrides win everywhere and are audited; owners' disputes."""
from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest

from blocklist import apikeys, create_app
from blocklist.reputation import Vote, cast_votes, iso_unix
from sync.publish import publish
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
    production = create_app(replace(config, profile="production", distinct_networks=None, burst_guard=None,
                                    rate_limits={}, signing_key=base64.b64encode(os.urandom(32)).decode()))
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
