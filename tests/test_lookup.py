"""Privacy: the lookup by hash prefix never answers with a number, and a device can erase itself."""
from __future__ import annotations

import hashlib
import itertools

import pytest

from blocklist import apikeys, devices
from blocklist.reputation import Vote, cast_votes, lookup
from tests.support import assert_error, redis_state
from tests.test_devices import everything_in_redis


def sha(number: str) -> str:
    return hashlib.sha256(number.encode("utf-8")).hexdigest()


def candidates():
    return (f"+86138{i:08d}" for i in itertools.count())


def sharing(digits: int, count: int = 2, avoid: int | None = None) -> list[str]:
    """The first `count` numbers whose hashes share `digits` leading hex digits (but not `avoid` digits)."""
    groups: dict[str, list[str]] = {}
    for number in candidates():
        group = groups.setdefault(sha(number)[:digits], [])
        if avoid and any(sha(n)[:avoid] == sha(number)[:avoid] for n in group):
            continue
        group.append(number)
        if len(group) == count:
            return group
    raise AssertionError("unreachable")


A, B = sharing(4, avoid=5)  # same 16-bit prefix, different 20-bit prefixes
C = next(n for n in candidates() if sha(n)[:3] == sha(A)[:3] and sha(n)[3] != sha(A)[3])  # same 12 bits only
PREFIX4, PREFIX5 = sha(A)[:4], sha(A)[:5]


def vote(store, number: str, tag: str, count: int, first_voter: int = 0) -> None:
    cast_votes(store, [Vote(number=number, tag=tag, voter=f"v{i:07d}", at=store.clock())
                       for i in range(first_voter, first_voter + count)])


def forms(number: str) -> list[str]:
    """Ways a Chinese mobile number could leak: E.164, its digits, the national number."""
    return [number, number.lstrip("+"), number[3:], number[3:6] + " " + number[6:10]]


def by_prefix(client, device, prefix: str) -> dict:
    response = client.get(f"/v1/lookup/prefix/{prefix}", headers=device)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# --- prefix lookup ------------------------------------------------------------------------------

def test_a_16_bit_prefix_lists_every_number_with_a_verdict_by_full_hash(client, store, device):
    vote(store, A, "fraud", 5)
    vote(store, B, "loan", 1)
    vote(store, C, "loan", 1)
    body = by_prefix(client, device, PREFIX4)
    assert body["prefix"] == PREFIX4
    assert [m["hash"] for m in body["matches"]] == sorted([sha(A), sha(B)])
    found = {m["hash"]: m for m in body["matches"]}
    assert (found[sha(A)]["verdict"], found[sha(A)]["label"], found[sha(A)]["reporters"]) == ("block", "fraud", 5)
    assert (found[sha(B)]["verdict"], found[sha(B)]["label"], found[sha(B)]["reporters"]) == ("warn", "loan", 1)
    assert found[sha(A)]["lists"] == ["spam", "fraud"]


def test_a_20_bit_prefix_narrows_the_answer(client, store, device):
    vote(store, A, "fraud", 5)
    vote(store, B, "loan", 1)
    assert [m["hash"] for m in by_prefix(client, device, PREFIX5)["matches"]] == [sha(A)]


def test_the_answer_never_contains_the_number(client, store, device):
    vote(store, A, "fraud", 5)
    vote(store, B, "loan", 2)
    for prefix in (PREFIX4, PREFIX5):
        response = client.get(f"/v1/lookup/prefix/{prefix}", headers=device)
        text = response.get_data(as_text=True)
        assert sha(A) in text
        for number in (A, B):
            for form in forms(number):
                assert form not in text, (prefix, form)
        assert all("number" not in match for match in response.get_json()["matches"])


def test_an_allowed_number_is_listed_too(client, store, device):
    vote(store, A, "safe", 2)
    assert [(m["hash"], m["verdict"], m["label"]) for m in by_prefix(client, device, PREFIX4)["matches"]] == \
        [(sha(A), "allow", "safe")]


def test_a_number_withdrawn_to_unknown_disappears(client, store, device):
    assert client.post("/v1/reports", headers=device, json={"number": A, "tag": "loan"}).status_code == 201
    assert [m["hash"] for m in by_prefix(client, device, PREFIX4)["matches"]] == [sha(A)]
    assert client.delete(f"/v1/reports/{A}", headers=device).status_code == 200
    assert lookup(store, A)["verdict"] == "unknown"
    assert by_prefix(client, device, PREFIX4)["matches"] == []


def test_a_prefix_with_no_listed_number_has_no_matches(client, store, device):
    vote(store, C, "loan", 1)
    assert by_prefix(client, device, PREFIX4) == {"prefix": PREFIX4, "matches": []}


@pytest.mark.parametrize("prefix", ["abc", "abcdef", "ABCD", "aBcDe", "ghij", "12g4", "12 4", "-1234", "1234%20"])
def test_a_prefix_other_than_4_or_5_lowercase_hex_digits_is_400(client, device, prefix):
    error = assert_error(client.get(f"/v1/lookup/prefix/{prefix}", headers=device), 400, "invalid_prefix")
    assert "4 or 5" in error["message"]


def test_a_prefix_with_a_trailing_newline_is_400(client, device):
    assert_error(client.get("/v1/lookup/prefix/1234%0A", headers=device), 400, "invalid_prefix")


def test_the_lookup_needs_a_device_token(client, store):
    key = apikeys.create(store, "vendor", "admin")
    assert_error(client.get(f"/v1/lookup/prefix/{PREFIX4}"), 401, "unauthorized")
    assert_error(client.get(f"/v1/lookup/prefix/{PREFIX4}", headers={"Authorization": f"Bearer {key}"}),
                 401, "unauthorized")


def test_a_lookup_stores_nothing(client, store, device, redis_client):
    vote(store, A, "fraud", 5)
    before = redis_state(redis_client)
    by_prefix(client, device, PREFIX4)
    by_prefix(client, device, sha(C)[:5])
    assert redis_state(redis_client) == before


# --- erasing a device ---------------------------------------------------------------------------

def device_id_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ").split(".")[0]


def test_erasing_a_device_withdraws_its_votes_everywhere(client, store, device, new_device):
    feed_key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    vote(store, A, "fraud", 2)  # two others; the device's vote makes the third
    vote(store, C, "loan", 3, first_voter=10)  # blocked by loan reports with or without it
    other = new_device()
    for number in (A, B, C):
        assert client.post("/v1/reports", headers=device, json={"number": number, "tag": "fraud"}).status_code == 201
    assert client.post("/v1/reports", headers=other, json={"number": C, "tag": "loan"}).status_code == 201
    assert (lookup(store, A)["verdict"], lookup(store, B)["verdict"]) == ("block", "warn")
    cursor = client.get("/v1/feed", query_string={"limit": 1000}, headers=feed_key).get_json()["next_cursor"]

    response = client.delete("/v1/devices/me", headers=device)
    assert response.status_code == 200
    assert response.get_json() == {"erased": True, "votes_withdrawn": 3}
    assert (lookup(store, A)["verdict"], lookup(store, A)["reporters"]) == ("warn", 2)
    assert lookup(store, B)["verdict"] == "unknown"
    assert lookup(store, C)["reporters"] == 4 and lookup(store, C)["tags"] == {"loan": {"reporters": 4, "score": 4.0}}
    changes = client.get("/v1/feed", query_string={"cursor": cursor}, headers=feed_key).get_json()["changes"]
    assert sorted((c["number"], c["verdict"], c["label"]) for c in changes) == sorted(
        [(A, "warn", "fraud"), (B, "unknown", None)])  # C's verdict and label did not change
    assert by_prefix(client, other, PREFIX4)["matches"][0]["reporters"] == 2


def test_an_erased_devices_token_stops_working(client, device):
    client.post("/v1/reports", headers=device, json={"number": A, "tag": "loan"})
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    assert_error(client.post("/v1/reports", headers=device, json={"number": B, "tag": "loan"}), 401, "unauthorized")
    assert_error(client.get(f"/v1/lookup/prefix/{PREFIX4}", headers=device), 401, "unauthorized")
    assert_error(client.delete("/v1/devices/me", headers=device), 401, "unauthorized")


def report_everything_twice(client, device, other) -> None:
    for number in (A, B, C):
        mine = {"number": number, "tag": "fraud", "report_id": f"r-{number.lstrip('+')}", "note": "asked for a loan"}
        assert client.post("/v1/reports", headers=device, json=mine).status_code == 201
        assert client.post("/v1/reports", headers=other, json={"number": number, "tag": "loan"}).status_code == 201


def test_no_key_or_value_mentions_an_erased_devices_id(client, device, new_device, redis_client):
    other = new_device()
    report_everything_twice(client, device, other)
    assert [text for text in everything_in_redis(redis_client) if device_id_of(device) in text]
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    remaining = everything_in_redis(redis_client)
    assert not [text for text in remaining if device_id_of(device) in text]
    assert [text for text in remaining if device_id_of(other) in text]  # the other device is still there


def test_no_vote_of_an_erased_device_remains(client, store, device, new_device, redis_client):
    report_everything_twice(client, device, new_device())
    voter = devices.voter_field(store.secret, device_id_of(device))
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    for number in (A, B, C):
        assert voter not in redis_client.hkeys(store.keys.number(number))
        assert lookup(store, number)["tags"] == {"loan": {"reporters": 1, "score": 1.0}}


def test_nothing_keyed_by_an_erased_devices_voter_field_remains(client, store, device, new_device, redis_client):
    report_everything_twice(client, device, new_device())
    voter = devices.voter_field(store.secret, device_id_of(device))
    assert [text for text in everything_in_redis(redis_client) if voter in text]
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    assert not [text for text in everything_in_redis(redis_client) if voter in text]


def test_an_erased_devices_disputes_no_longer_name_it(client, device, redis_client):
    response = client.post("/v1/disputes", headers=device,
                           json={"number": A, "reason": "my shop's line", "contact": "owner@example.com"})
    assert response.status_code == 201
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    assert not [text for text in everything_in_redis(redis_client) if device_id_of(device) in text]


def test_erasing_a_device_without_votes_succeeds(client, device):
    response = client.delete("/v1/devices/me", headers=device)
    assert response.get_json() == {"erased": True, "votes_withdrawn": 0}


def test_erasing_needs_a_device_token(client, store):
    key = apikeys.create(store, "ops", "admin")
    assert_error(client.delete("/v1/devices/me"), 401, "unauthorized")
    assert_error(client.delete("/v1/devices/me", headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")
