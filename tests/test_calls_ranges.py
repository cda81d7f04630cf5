"""The ring-once detector (POST /v1/calls) and the `allow` and `ranges` lists, on a real Redis."""

import pytest

from blocklist import apikeys, lists, publish
from blocklist.reputation import Vote, cast_votes, withdraw_vote
from blocklist.web import create_app
from sync.client import Client, lookup
from tests.support import assert_error, redis_state, serve

NUMBER = "+8613800138000"
BLOCK = [f"+86138001380{i:02d}" for i in range(4)]  # four consecutive numbers: one block of 10
TEN_KEY, HUNDRED_KEY = "+861380013800x", "+86138001380xx"
QUIET = "+8613800138007"  # in BLOCK's block of 10; nobody reports it
SPREAD = [f"+86138001380{ten}{unit}" for ten in (0, 2, 5, 9) for unit in (1, 6)]  # 8 over 4 blocks of 10
MINUTE = 60


# --- helpers --------------------------------------------------------------------------------

def call(client, headers, number=NUMBER, ring=1.5, answered=False, direction="incoming", ip=None, **extra):
    body = {"number": number, "ring_seconds": ring, "answered": answered, "direction": direction, **extra}
    environ = {"REMOTE_ADDR": ip} if ip else {}
    return client.post("/v1/calls", json=body, headers=headers, environ_base=environ)


def ok(response) -> dict:
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def reputation_of(client, headers, number=NUMBER) -> dict:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def ring_keys(redis_client) -> list[str]:
    return sorted(redis_client.scan_iter("cm:ring:*"))


def votes(store, numbers, tag="loan", voters="v") -> None:
    """Three distinct reporters tag each number now: enough to block it (or to allow it, tag safe)."""
    cast_votes(store, [Vote(number=n, tag=tag, voter=f"{voters}{i:07d}", at=store.clock())
                       for n in numbers for i in range(3)])


def members(store, name) -> set[str]:
    return store.redis.smembers(store.keys.list_members(name))


def sync_phone(url, folder) -> None:
    phone = Client(url, folder, None, attempts=3, backoff=0.01)
    for name in phone.list_names():
        phone.sync_list(name)


@pytest.fixture
def devices(new_device):
    return [new_device() for _ in range(5)]


@pytest.fixture
def admin(store):
    return {"Authorization": f"Bearer {apikeys.create(store, 'ops-ranges', 'admin')}"}


# --- the ring-once detector ---------------------------------------------------------------

def test_three_devices_with_short_unanswered_rings_flag_the_number(client, store, signer, devices):
    answers = [ok(call(client, d)) for d in devices[:2]]
    answers.append(ok(call(client, devices[2], number="138 0013 8000", region="CN")))  # the same number
    assert answers == [{"number": NUMBER, "counted": True, "ring_once": flagged} for flagged in (False, False, True)]
    rep = reputation_of(client, devices[3])
    assert (rep["verdict"], rep["label"], rep["detected"]) == ("block", "ring_once", ["ring_once"])
    assert rep["reporters"] == 0 and rep["tags"]["ring_once"]["reporters"] == 0
    assert {"spam", "ring_once"} <= set(rep["lists"])
    publish.publish(store, signer)
    assert NUMBER in members(store, "ring_once") and NUMBER in members(store, "spam")


@pytest.mark.parametrize("how", ["two devices", "one device three times"])
def test_too_few_distinct_devices_raise_no_flag(client, devices, how):
    senders = devices[:2] if how == "two devices" else [devices[0]] * 3
    assert not any(ok(call(client, d))["ring_once"] for d in senders)
    rep = reputation_of(client, devices[4])
    assert rep["verdict"] == "unknown" and rep["detected"] == []


@pytest.mark.parametrize("event", [{"ring": 3.0}, {"ring": 12}, {"direction": "outgoing"},
                                   {"direction": "outgoing", "answered": True}])
def test_long_rings_and_outgoing_calls_are_not_counted_nor_stored(client, redis_client, devices, event):
    before = redis_state(redis_client)
    for d in devices[:3]:
        assert ok(call(client, d, **event)) == {"number": NUMBER, "counted": False, "ring_once": False}
    assert redis_state(redis_client) == before


def test_events_spread_beyond_the_window_raise_no_flag(client, clock, devices):
    for d in devices[:3]:
        assert ok(call(client, d)) == {"number": NUMBER, "counted": True, "ring_once": False}
        clock.advance(seconds=61 * MINUTE)
    assert reputation_of(client, devices[4])["verdict"] == "unknown"


def test_a_number_others_answered_in_the_window_is_not_flagged(client, devices):
    for short, answered in zip(devices[:3], devices[3:] + [None]):
        assert ok(call(client, short))["ring_once"] is False
        if answered:
            assert ok(call(client, answered, ring=20, answered=True))["counted"] is True
    rep = reputation_of(client, devices[0])
    assert rep["verdict"] == "unknown" and rep["detected"] == []


def test_answers_after_the_third_short_ring_in_the_window_leave_no_flag(client, clock, devices):
    for d in devices[:3]:
        ok(call(client, d))
        clock.advance(seconds=MINUTE)
    for d in devices[3:]:
        assert ok(call(client, d, ring=20, answered=True))["counted"] is True
        clock.advance(seconds=MINUTE)
    rep = reputation_of(client, devices[0])  # 3 short rings and 2 answers within 5 minutes
    assert (rep["verdict"], rep["detected"]) == ("unknown", [])


def test_stored_events_expire_with_the_window_and_name_no_device(client, store, redis_client, new_device):
    tokens = [new_device() for _ in range(3)]
    ok(call(client, tokens[0]))
    ok(call(client, tokens[1], ring=30, answered=True))
    keys = ring_keys(redis_client)
    assert keys == sorted([store.keys.ring_events(NUMBER, "short"), store.keys.ring_events(NUMBER, "answered")])
    window = store.config.ring_once_window_minutes * MINUTE
    secrets = [h["Authorization"].split()[1] for h in tokens]
    secrets += [s.split(".")[0] for s in secrets] + [s.split(".")[1] for s in secrets]
    for key in keys:
        assert 0 < redis_client.ttl(key) <= window
        stored = key + repr(redis_client.zrange(key, 0, -1, withscores=True))
        assert not any(secret in stored for secret in secrets)
    number_hash = repr(redis_client.hgetall(store.keys.number(NUMBER)))
    assert not any(secret in number_hash for secret in secrets)


EVENT = {"number": NUMBER, "ring_seconds": 1.5, "answered": False, "direction": "incoming"}


def without(field: str) -> dict:
    return {k: v for k, v in EVENT.items() if k != field}


@pytest.mark.parametrize("body, code", [
    *[(without(field), "validation_error") for field in EVENT],
    ({**EVENT, "ring_seconds": -1}, "validation_error"),
    ({**EVENT, "ring_seconds": "soon"}, "validation_error"),
    ({**EVENT, "answered": "yes"}, "validation_error"),
    ({**EVENT, "direction": "sideways"}, "validation_error"),
    ({**EVENT, "device": "x"}, "validation_error"),
    ({**EVENT, "region": "XX"}, "validation_error"),
    ({**EVENT, "number": "12"}, "invalid_number"),
    ({**EVENT, "number": "not a number"}, "invalid_number"),
    ({**EVENT, "number": "110"}, "invalid_number"),  # an emergency number
])
def test_invalid_events_are_400_and_write_nothing(client, redis_client, device, body, code):
    before = redis_state(redis_client)
    assert_error(client.post("/v1/calls", json=body, headers=device), 400, code)
    assert redis_state(redis_client) == before


def test_an_event_without_a_token_is_401(client, redis_client):
    before = redis_state(redis_client)
    assert_error(call(client, {}), 401, "unauthorized")
    assert_error(call(client, {"Authorization": "Bearer nope.nope"}), 401, "unauthorized")
    assert redis_state(redis_client) == before


def test_a_device_of_low_weight_is_not_counted(client, store, redis_client, new_device, device):
    low = new_device()
    low_id = low["Authorization"].split()[1].split(".")[0]
    redis_client.hset(store.keys.device(low_id), "w", 10)
    store.auth_cache.clear()
    ok(call(client, new_device()))
    ok(call(client, new_device()))
    before = redis_state(redis_client)
    assert ok(call(client, low)) == {"number": NUMBER, "counted": False, "ring_once": False}
    assert redis_state(redis_client) == before
    assert reputation_of(client, device)["verdict"] == "unknown"


@pytest.mark.parametrize("addresses, flagged", [
    (["203.0.113.5", "203.0.113.77", "203.0.113.200"], False),
    (["203.0.113.5", "198.51.100.5", "192.0.2.5"], True),
])
def test_with_distinct_networks_one_network_counts_once(config, addresses, flagged):
    config.distinct_networks = True
    client = create_app(config).test_client()
    tokens = [{"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"} for _ in range(4)]
    answers = [ok(call(client, t, ip=ip)) for t, ip in zip(tokens, addresses)]
    assert [a["ring_once"] for a in answers] == [False, False, flagged]
    assert all(a["counted"] for a in answers)
    assert (reputation_of(client, tokens[3])["verdict"] == "block") is flagged


# --- numbers people talk with ---------------------------------------------------------------

def talk(client, headers, number=NUMBER, seconds=120, direction="incoming"):
    return ok(call(client, headers, number=number, ring=6, answered=True, direction=direction,
                   duration_seconds=seconds))


def spam_reports(client, new_device, count, number=NUMBER) -> dict:
    for _ in range(count):
        response = client.post("/v1/reports", json={"number": number, "tag": "loan"}, headers=new_device())
        assert response.status_code == 201
    return reputation_of(client, new_device(), number)


def test_a_number_a_hundred_people_talked_with_needs_five_spam_reporters(client, new_device):
    for _ in range(100):
        talk(client, new_device(), direction="outgoing")  # people call their bank, too
    assert spam_reports(client, new_device, 4)["verdict"] == "warn"
    assert spam_reports(client, new_device, 1)["verdict"] == "block"


def test_short_answered_calls_are_not_conversations(client, new_device):
    for _ in range(100):
        assert talk(client, new_device(), seconds=30)["counted"] is True  # the detector still counts it
    assert spam_reports(client, new_device, 3)["verdict"] == "block"


def test_the_talkers_rule_is_capped(config, new_device):
    config.talker_cap = 4
    client = create_app(config).test_client()
    new = lambda: {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}  # noqa: E731
    for _ in range(200):  # would need 10 spam reporters uncapped
        talk(client, new())
    assert spam_reports(client, new, 3)["verdict"] == "warn"
    assert spam_reports(client, new, 1)["verdict"] == "block"


def test_talkers_are_counted_once_per_device_and_name_no_device(client, store, redis_client, new_device):
    talker = new_device()
    for _ in range(20):
        talk(client, talker)
    key = store.keys.talkers(NUMBER)
    assert redis_client.pfcount(key) == 1
    assert 0 < redis_client.ttl(key) <= store.config.talker_days * 86400
    device_id, secret = talker["Authorization"].split()[1].split(".")
    raw = redis_client.dump(key)
    assert device_id.encode() not in raw and secret.encode() not in raw


def test_a_low_weight_device_does_not_count_as_a_talker(client, store, redis_client, new_device):
    talker = new_device()
    device_id = talker["Authorization"].split()[1].split(".")[0]
    redis_client.hset(store.keys.device(device_id), "w", 10)
    store.auth_cache.clear()
    assert talk(client, talker)["counted"] is False
    assert redis_client.exists(store.keys.talkers(NUMBER)) == 0


# --- range rules ----------------------------------------------------------------------------

def test_block_keys_name_the_blocks_of_10_and_100():
    assert lists.block_keys(NUMBER) == (TEN_KEY, HUNDRED_KEY)


def test_four_spam_numbers_in_a_block_of_10_list_it():
    assert lists.ranges(BLOCK) == {TEN_KEY}
    assert lists.ranges(BLOCK[:3]) == set()


def test_eight_numbers_over_four_blocks_of_10_list_the_block_of_100_only():
    assert lists.ranges(SPREAD) == {HUNDRED_KEY}
    assert lists.ranges(SPREAD[:-1]) == set()  # 7 numbers are not enough


@pytest.mark.parametrize("per_block, expected", [
    ((3, 3, 2), set()),
    ((4, 2, 2), {"+861380013800x"}),
    ((4, 4, 0), {"+861380013800x", "+861380013801x"}),
])
def test_eight_numbers_over_three_blocks_of_10_never_list_the_block_of_100(per_block, expected):
    spread = [f"+86138001380{ten}{unit}" for ten, count in enumerate(per_block) for unit in range(count)]
    assert len(spread) == 8
    assert lists.ranges(spread) == expected


def test_short_numbers_never_make_a_range():
    service = [f"+869555{i}" for i in range(10)] + [f"+86123456{i}" for i in range(10)]  # 7 and 9 digits
    assert lists.ranges(service) == set()
    assert lists.ranges([f"+123456789{i}" for i in range(4)]) == {"+123456789x"}  # 10 digits do


# --- ranges and allow, published and looked up on a phone -----------------------------------

@pytest.fixture
def phone(tmp_path) -> str:
    return str(tmp_path / "phone")


@pytest.fixture
def server(app, store, signer):
    publish.publish(store, signer)
    with serve(app) as url:
        yield url


def override(client, admin, number, verdict="allow"):
    response = client.put(f"/v1/admin/numbers/{number}/override", headers=admin,
                          json={"verdict": verdict, "reason": "x"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.mark.parametrize("spam, key, quiet", [(BLOCK, TEN_KEY, QUIET), (SPREAD, HUNDRED_KEY, "+8613800138077")])
def test_a_block_of_spam_numbers_reaches_the_phone_as_a_range(server, store, signer, phone, spam, key, quiet):
    votes(store, spam)
    publish.publish(store, signer)
    assert members(store, "ranges") == {key}
    assert set(spam) <= members(store, "spam")
    sync_phone(server, phone)
    assert lookup(phone, quiet) == {"number": quiet, "lists": ["ranges"]}
    assert set(lookup(phone, spam[0])["lists"]) == {"spam", "ranges"}
    assert lookup(phone, "+8613800138177")["lists"] == []  # the next block of 100


@pytest.mark.parametrize("how", ["override", "safe votes"])
def test_an_allowed_number_in_a_listed_range_gets_through(server, client, store, signer, admin, phone, how):
    votes(store, BLOCK)
    if how == "override":
        rep = override(client, admin, QUIET)
        assert (rep["verdict"], rep["label"], rep["override"]) == ("allow", "safe", "allow")
    else:
        votes(store, [QUIET], tag="safe", voters="s")
    publish.publish(store, signer)
    assert members(store, "allow") == {QUIET}
    assert members(store, "ranges") == {TEN_KEY}
    sync_phone(server, phone)
    assert lookup(phone, QUIET) == {"number": QUIET, "lists": ["allow"]}
    assert lookup(phone, "+8613800138008")["lists"] == ["ranges"]


@pytest.mark.parametrize("how", ["withdrawn", "overridden"])
def test_the_range_leaves_when_its_numbers_stop_being_spam(server, client, store, signer, admin, phone, how):
    votes(store, BLOCK)
    publish.publish(store, signer)
    assert members(store, "ranges") == {TEN_KEY}
    if how == "withdrawn":
        for i in range(3):
            withdraw_vote(store, BLOCK[0], f"v{i:07d}")
    else:
        override(client, admin, BLOCK[0])
    publish.publish(store, signer)
    assert BLOCK[0] not in members(store, "spam")
    assert members(store, "ranges") == set()
    sync_phone(server, phone)
    assert lookup(phone, QUIET)["lists"] == []
    expected = ["allow"] if how == "overridden" else []
    assert lookup(phone, BLOCK[0])["lists"] == expected


def test_a_lists_first_publish_takes_numbers_whose_change_log_entries_are_gone(store, signer, redis_client):
    votes(store, [QUIET], tag="safe")
    votes(store, [BLOCK[1]])
    for bucket in range(store.config.buckets):  # past the change log's retention
        redis_client.delete(store.keys.changes(bucket))
    publish.publish(store, signer)
    assert members(store, "allow") == {QUIET}
    assert members(store, "spam") == {BLOCK[1]}
    votes(store, [BLOCK[2]])  # later changes come from the change log as usual
    publish.publish(store, signer)
    assert members(store, "spam") == {BLOCK[1], BLOCK[2]}


def test_fresh_devices_ringing_from_three_networks_do_not_block_under_production_ranks(config):
    config.distinct_networks, config.fresh_reporters_to_block, config.aged_reporters_to_block = True, 21, 10
    client = create_app(config).test_client()
    tokens = [{"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"} for _ in range(3)]
    answers = [ok(call(client, t, ip=ip)) for t, ip in zip(tokens, ["203.0.113.5", "198.51.100.5", "192.0.2.5"])]
    assert [a["ring_once"] for a in answers] == [False, False, False]
    assert reputation_of(client, tokens[0])["verdict"] == "unknown"


def test_a_burst_of_fresh_devices_ringing_makes_the_detector_hold_the_number(config):
    config.distinct_networks, config.burst_guard = True, True
    client = create_app(config).test_client()
    tokens = [{"Authorization": f"Bearer {client.post('/v1/devices', environ_base={'REMOTE_ADDR': f'10.{i}.0.1'}).get_json()['token']}"}
              for i in range(8)]
    for i, token in enumerate(tokens):
        ok(call(client, token, ip=f"10.{i}.0.1"))
    body = reputation_of(client, tokens[0])
    assert (body["verdict"], body["held"], body["detected"]) == ("warn", True, ["ring_once"])
