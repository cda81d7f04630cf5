"""Reporter trust: distinct networks, voter weights, the burst guard, registration bursts, review."""
from __future__ import annotations

import time

import pytest

from blocklist import apikeys, trust
from blocklist.reputation import Vote, cast_votes, lookup, reweigh_votes, withdraw_vote
from blocklist.web import create_app
from tests.support import assert_error, redis_state

NUMBER = "+8613800138000"
OTHER = "+8613900139000"
ONE_NET = ["203.0.113.7", "203.0.113.8", "203.0.113.9"]


@pytest.fixture
def settings() -> dict:
    return {}  # development defaults; `guarded(...)` overrides them per test


@pytest.fixture
def app(config, settings):
    for name, value in settings.items():
        setattr(config, name, value)
    return create_app(config)


def guarded(**settings):
    return pytest.mark.parametrize("settings", [settings], ids=["+".join(settings)])


@pytest.fixture
def admin(store) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, 'ops', 'admin')}"}


def numbers(count: int) -> list[str]:
    return [f"+86137001370{i:02d}" for i in range(count)]


def register(client, address: str = "127.0.0.1") -> dict[str, str]:
    response = client.post("/v1/devices", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 201
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def device_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1].partition(".")[0]


def report(client, headers, number=NUMBER, tag="loan", address="127.0.0.1") -> None:
    response = client.post("/v1/reports", json={"number": number, "tag": tag}, headers=headers,
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 201, response.get_data(as_text=True)


def report_from(client, addresses, number=NUMBER) -> list[dict[str, str]]:
    """One new device per address, registered there and tagging `number` loan from there."""
    reporters = [register(client, address) for address in addresses]
    for headers, address in zip(reporters, addresses):
        report(client, headers, number, address=address)
    return reporters


def networks(count: int) -> list[str]:
    return [f"10.{i}.0.1" for i in range(count)]  # one address on each of `count` networks


def shown(client, headers, number=NUMBER) -> dict:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def votes(store, number=NUMBER, weights=(100, 100, 100), first=0, **extra) -> None:
    cast_votes(store, [Vote(number=number, tag="loan", voter=f"v{first + i:07d}", at=store.clock(),
                            weight=weight, **extra) for i, weight in enumerate(weights)])


def weight_of(store, headers) -> str | None:
    return store.redis.hget(store.keys.device(device_id(headers)), "w")


# --- development profile: no guard is on --------------------------------------------------------

def test_in_development_one_address_may_block_and_bursts_are_neither_held_nor_light(client, store, device):
    reporters = report_from(client, ["203.0.113.7"] * 8)  # eight fresh devices, one address
    assert (shown(client, device)["verdict"], shown(client, device)["held"]) == ("block", False)
    assert [weight_of(store, headers) for headers in reporters] == [None] * 8  # None: full weight


# --- distinct networks --------------------------------------------------------------------------

NETWORKS = guarded(distinct_networks=True)


@NETWORKS
@pytest.mark.parametrize("addresses, verdict", [
    (ONE_NET, "warn"),
    (["203.0.113.7", "198.51.100.7", "192.0.2.7"], "block"),
    (["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:1:ffff::9"], "warn"),
    (["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"], "block"),
], ids=["one-ipv4-24-warns", "three-ipv4-24s-block", "one-ipv6-48-warns", "three-ipv6-48s-block"])
def test_three_spam_reporters_count_once_per_network(client, device, addresses, verdict):
    report_from(client, addresses)
    body = shown(client, device)
    assert (body["verdict"], body["reporters"]) == (verdict, 3)


def blocked_by_three_networks(client, device) -> list[dict[str, str]]:
    """Four devices, two sharing a /24: three distinct networks, so the number blocks."""
    reporters = report_from(client, ["203.0.113.7", "203.0.113.8", "198.51.100.7", "192.0.2.7"])
    assert shown(client, device)["verdict"] == "block"
    return reporters


@NETWORKS
def test_retagging_to_safe_takes_the_devices_network_out_of_the_count(client, device):
    reporters = blocked_by_three_networks(client, device)
    report(client, reporters[3], tag="safe", address="192.0.2.7")
    body = shown(client, device)  # three spam reporters and score 2.0, but two networks
    assert (body["verdict"], body["tags"]["loan"]["reporters"], body["score"]) == ("warn", 3, 2.0)


@NETWORKS
def test_withdrawing_drops_a_network_only_when_its_last_spam_vote_goes(client, device):
    reporters = blocked_by_three_networks(client, device)
    assert client.delete(f"/v1/reports/{NUMBER}", headers=reporters[0]).status_code == 200
    assert shown(client, device)["verdict"] == "block"  # 203.0.113.8 still speaks for that /24
    assert client.delete(f"/v1/reports/{NUMBER}", headers=reporters[3]).status_code == 200
    assert shown(client, device)["verdict"] == "warn"


@guarded(distinct_networks=True, burst_guard=True)
def test_networks_are_stored_only_as_keyed_hashes(client, store, redis_client):
    for address in ("203.0.113.7", "2001:db8:1::7"):
        report(client, register(client, address), address=address)
    fields = redis_client.hkeys(store.keys.number(NUMBER))
    assert len([f for f in fields if len(f) == 5 and f.startswith("n")]) == 2  # two networks counted
    assert list(redis_client.scan_iter(match="cm:netreg:*"))  # registrations counted per network
    stored = repr(redis_state(redis_client))  # every key and value but rate-limit counters
    for text in ("203.0.113", "2001:db8", "2001:0db8", "/24", "/48"):
        assert text not in stored


# --- weights --------------------------------------------------------------------------------------

def test_three_votes_at_ten_percent_only_warn_where_three_full_votes_block(store):
    votes(store, weights=(10, 10, 10))
    votes(store, OTHER)
    light, full = lookup(store, NUMBER), lookup(store, OTHER)
    assert (light["verdict"], light["reporters"], light["score"]) == ("warn", 3, 0.3)
    assert (full["verdict"], full["reporters"], full["score"]) == ("block", 3, 3.0)


def test_score_is_the_sum_of_the_votes_weights(store):
    votes(store, weights=(100, 40, 25, 7))
    assert lookup(store, NUMBER)["score"] == 1.72


def test_reweighing_halves_a_contribution_and_reweighing_back_restores_the_number_exactly(store, redis_client):
    votes(store, weights=(100, 100))
    votes(store, first=2, weights=(100,), network=4242)
    before = redis_client.hgetall(store.keys.number(NUMBER))
    assert reweigh_votes(store, [NUMBER], "v0000002", 50) == 1
    assert lookup(store, NUMBER)["score"] == 2.5
    for weight in (37, 3, 100):
        reweigh_votes(store, [NUMBER], "v0000002", weight)
    assert redis_client.hgetall(store.keys.number(NUMBER)) == before  # no drift


def test_withdrawing_a_reweighed_vote_leaves_no_trace_of_it(store, redis_client):
    votes(store)
    votes(store, OTHER, weights=(100, 100))
    reweigh_votes(store, [NUMBER], "v0000002", 37)
    withdraw_vote(store, NUMBER, "v0000002")
    assert redis_client.hgetall(store.keys.number(NUMBER)) == redis_client.hgetall(store.keys.number(OTHER))
    schedule = store.keys.decay_schedule
    assert (redis_client.zscore(schedule(store.keys.bucket_of(NUMBER)), NUMBER)
            == redis_client.zscore(schedule(store.keys.bucket_of(OTHER)), OTHER))


# --- burst guard ----------------------------------------------------------------------------------

BURST = guarded(burst_guard=True)


@BURST
def test_eight_fresh_devices_within_the_window_hold_the_number_at_warn(client, device):
    report_from(client, networks(8))
    body = shown(client, device)
    assert (body["verdict"], body["held"], body["reporters"]) == ("warn", True, 8)


@BURST
def test_fresh_tags_spread_beyond_the_window_are_not_held(client, clock, device):
    report_from(client, networks(4))
    clock.advance(seconds=11 * 60)
    report_from(client, networks(4))
    assert (shown(client, device)["verdict"], shown(client, device)["held"]) == ("block", False)


@BURST
def test_devices_older_than_fresh_days_never_trigger_the_hold(client, clock, device):
    reporters = [register(client, address) for address in networks(8)]
    clock.advance(days=8)
    for headers in reporters:
        report(client, headers)
    assert (shown(client, device)["verdict"], shown(client, device)["held"]) == ("block", False)


@BURST
def test_imported_votes_that_are_not_fresh_never_trigger_the_hold(store):
    votes(store, weights=[100] * 10, fresh=False)
    votes(store, OTHER, weights=[100] * 10, fresh=True)  # the same burst from fresh devices is held
    held = [(r["verdict"], r["held"]) for r in (lookup(store, NUMBER), lookup(store, OTHER))]
    assert held == [("block", False), ("warn", True)]


@BURST
def test_an_operator_release_ends_the_hold_and_is_audited(client, admin):
    report_from(client, networks(8))
    assert [n["number"] for n in client.get("/v1/admin/held", headers=admin).get_json()["numbers"]] == [NUMBER]
    response = client.post(f"/v1/admin/numbers/{NUMBER}/release", headers=admin, json={"reason": "checked"})
    assert response.status_code == 200
    assert (response.get_json()["verdict"], response.get_json()["held"]) == ("block", False)
    assert (shown(client, admin)["verdict"], shown(client, admin)["held"]) == ("block", False)
    assert client.get("/v1/admin/held", headers=admin).get_json()["numbers"] == []
    entries = client.get("/v1/admin/audit", headers=admin).get_json()["entries"]
    assert [(e["action"], e["number"], e["by"], e["reason"]) for e in entries] == \
        [("hold_released", NUMBER, "ops", "checked")]


def test_releasing_a_number_that_is_not_held_is_409_and_writes_nothing(client, admin, redis_client):
    client.get("/v1/admin/held", headers=admin)  # the key's first use is noted before the snapshot
    before = redis_state(redis_client)
    error = assert_error(client.post(f"/v1/admin/numbers/{NUMBER}/release", headers=admin, json={"reason": "x"}),
                         409, "conflict")
    assert "not held" in error["message"]
    assert redis_state(redis_client) == before


@BURST
def test_a_device_token_cannot_release_a_hold(client, device):
    report_from(client, networks(8))
    assert_error(client.post(f"/v1/admin/numbers/{NUMBER}/release", headers=device, json={}), 401, "unauthorized")
    assert shown(client, device)["held"] is True


@BURST
def test_one_fresh_device_retagging_cannot_hold_a_blocked_number(client, store, device):
    votes(store, weights=[100] * 5)  # established reporters block the number
    toggler = register(client)
    for tag in ["loan", "fraud"] * 4:
        report(client, toggler, tag=tag)
    assert (shown(client, device)["verdict"], shown(client, device)["held"]) == ("block", False)


# --- registration bursts --------------------------------------------------------------------------

def burst_from(client, network="203.0.113", count=7) -> list[dict[str, str]]:
    return [register(client, f"{network}.{10 + i}") for i in range(count)]


@BURST
def test_registrations_past_the_networks_hourly_allowance_start_at_burst_weight(client, store):
    weights = [weight_of(store, headers) for headers in burst_from(client)]
    assert weights == [None] * 5 + ["10", "10"]  # None: full weight
    assert weight_of(store, register(client, "198.51.100.1")) is None  # another network is unaffected


@BURST
def test_a_burst_registered_device_reports_at_burst_weight(client, store):
    reporters = burst_from(client, count=6)
    report(client, reporters[0], OTHER)
    report(client, reporters[5], NUMBER)
    assert (lookup(store, OTHER)["score"], lookup(store, NUMBER)["score"]) == (1.0, 0.1)


@BURST
def test_the_registration_count_expires_within_the_hour(client, store, redis_client):
    burst_from(client)
    [counter] = list(redis_client.scan_iter(match="cm:netreg:*"))
    assert 0 < redis_client.ttl(counter) <= trust.REGISTRATION_WINDOW
    redis_client.pexpire(counter, 1)  # the hour is over
    time.sleep(0.01)
    assert weight_of(store, register(client, "203.0.113.99")) is None


@BURST
def test_a_registration_does_not_extend_its_networks_hour(client, redis_client):
    register(client, "203.0.113.10")
    [counter] = list(redis_client.scan_iter(match="cm:netreg:*"))
    redis_client.expire(counter, 5)  # 59 minutes 55 seconds of the hour have passed
    register(client, "203.0.113.11")
    assert redis_client.ttl(counter) <= 5


# --- trust review ---------------------------------------------------------------------------------

def contradicted_device(client, store, admin) -> dict[str, str]:
    """A device that tags NUMBER (with two others) and three numbers operators allow."""
    liar = register(client)
    votes(store, weights=(100, 100))
    for number in [NUMBER] + numbers(3):
        report(client, liar, number)
    for number in numbers(3):
        response = client.put(f"/v1/admin/numbers/{number}/override", headers=admin,
                              json={"verdict": "allow", "reason": "verified hotline"})
        assert response.status_code == 200
    assert lookup(store, NUMBER)["score"] == 3.0
    return liar


def test_a_device_contradicted_by_three_allow_overrides_weighs_nothing_after_review(client, store, admin):
    liar = contradicted_device(client, store, admin)
    assert trust.review(store) == 1
    assert weight_of(store, liar) == "0"
    assert lookup(store, NUMBER)["score"] == 2.0  # its vote elsewhere is re-weighed too
    store.auth_cache.clear()  # the weight this process cached for the token (10 s) is gone
    report(client, liar, OTHER)
    assert lookup(store, OTHER)["score"] == 0.0  # and its later reports weigh nothing


def test_a_device_agreeing_with_settled_verdicts_keeps_full_weight(client, store):
    honest = register(client)
    for i, number in enumerate(numbers(3)):
        votes(store, number, weights=[100] * 5, first=10 * i)
        report(client, honest, number)
        assert (lookup(store, number)["verdict"], lookup(store, number)["reporters"]) == ("block", 6)
    assert trust.weigh(store, device_id(honest)) == (100, 100)
    assert weight_of(store, honest) in (None, "100")
    assert lookup(store, numbers(3)[0])["score"] == 6.0


def batch(client, headers, count: int) -> None:
    items = [{"number": number, "tag": "loan"} for number in numbers(count)]
    assert client.post("/v1/reports/batch", json={"reports": items}, headers=headers).status_code == 200


@guarded(human_daily_tags=5)
def test_a_device_tagging_more_numbers_a_day_than_a_human_weighs_nothing(client, store):
    bot, human = register(client), register(client)
    batch(client, bot, 6)
    batch(client, human, 5)
    trust.review(store)
    assert (weight_of(store, bot), weight_of(store, human)) == ("0", None)
    assert lookup(store, numbers(6)[5])["score"] == 0.0 and lookup(store, numbers(6)[0])["score"] == 1.0


@guarded(human_daily_tags=5)
def test_too_many_tags_just_before_midnight_still_weigh_nothing_after_review(client, clock, store):
    clock.advance(seconds=86400 - 30)  # 23:59:30
    bot = register(client)
    batch(client, bot, 6)
    clock.advance(seconds=60)  # the scheduler's next review beat falls after midnight
    trust.review(store)
    assert weight_of(store, bot) == "0"


def test_a_vote_cast_with_a_stale_weight_is_corrected_by_the_next_review(client, store, admin):
    liar = contradicted_device(client, store, admin)
    shown(client, liar)  # this process caches the token with weight 100
    trust.review(store)
    report(client, liar, OTHER)  # filed at weight 100 within the cache's 10 seconds
    trust.review(store)
    assert lookup(store, OTHER)["score"] == 0.0


def trust_traces(redis_client, store, headers) -> list:
    due = redis_client.zscore(store.keys.trust_due(), device_id(headers))
    return list(redis_client.scan_iter(match="cm:dt:*")) + ([] if due is None else ["cm:trust:due member"])


def test_erasing_a_device_leaves_no_trust_keys(client, store, redis_client):
    gone = register(client)
    report(client, gone)
    assert len(trust_traces(redis_client, store, gone)) == 2
    assert client.delete("/v1/devices/me", headers=gone).status_code == 200
    assert trust_traces(redis_client, store, gone) == []


def test_erasing_a_device_removes_its_tally_from_the_day_before_yesterday(client, clock, store, redis_client):
    gone = register(client)
    clock.advance(seconds=23 * 3600)  # 23:00 on day D: the tally lives until 23:00 on D+2
    report(client, gone)
    clock.advance(days=1.5)  # 11:00 on D+2
    assert client.delete("/v1/devices/me", headers=gone).status_code == 200
    assert trust_traces(redis_client, store, gone) == []


# --- ranks: fresh, aged and standing devices (production rules) -------------------------------

RANKS = dict(fresh_reporters_to_block=21, aged_reporters_to_block=10, distinct_networks=True)
RANKED = guarded(**RANKS)


def spread_reports(client, clock, headers_and_addresses, number=NUMBER, tag="fraud") -> None:
    """Reports from many devices, an hour apart: no burst for the guard to see."""
    for headers, address in headers_and_addresses:
        report(client, headers, number, tag=tag, address=address)
        clock.advance(seconds=3600)


@RANKED
def test_fresh_devices_alone_block_only_past_twenty_on_distinct_networks(client, clock, device):
    addresses = networks(21)
    reporters = [(register(client, address), address) for address in addresses]
    spread_reports(client, clock, reporters[:20])
    body = shown(client, device)
    assert (body["verdict"], body["reporters"]) == ("warn", 20)
    spread_reports(client, clock, reporters[20:])
    assert shown(client, device)["verdict"] == "block"


@RANKED
def test_aged_devices_without_standing_need_ten_to_block(client, clock, device):
    addresses = networks(10)
    reporters = [(register(client, address), address) for address in addresses]
    clock.advance(days=8)  # past the fresh window
    spread_reports(client, clock, reporters[:9])
    assert shown(client, device)["verdict"] == "warn"
    spread_reports(client, clock, reporters[9:])
    assert shown(client, device)["verdict"] == "block"


def aged_crowd(client, clock, count: int, first_network: int = 100) -> list[tuple[dict, str]]:
    addresses = [f"10.{first_network + i}.0.1" for i in range(count)]
    crowd = [(register(client, address), address) for address in addresses]
    clock.advance(days=8)
    return crowd


@RANKED
def test_early_spam_tags_borne_out_by_the_crowd_earn_standing_and_standing_blocks_with_three(
        client, clock, store, device):
    early = aged_crowd(client, clock, 3, first_network=1)
    crowd = aged_crowd(client, clock, 10, first_network=100)
    for target in numbers(2):
        spread_reports(client, clock, early, number=target)  # before the block
        spread_reports(client, clock, crowd, number=target)  # the crowd blocks it without them
        assert shown(client, device, target)["verdict"] == "block"
    trust.review(store)
    assert {store.redis.hget(store.keys.device(device_id(h)), "st") for h, _ in early} == {"2"}
    spread_reports(client, clock, early, number=OTHER)
    assert shown(client, device, OTHER)["verdict"] == "block"


@RANKED
def test_tagging_numbers_already_blocked_earns_no_standing(client, clock, store, device):
    crowd = aged_crowd(client, clock, 10, first_network=100)
    copiers = aged_crowd(client, clock, 3, first_network=1)
    for target in numbers(3):
        spread_reports(client, clock, crowd, number=target)
        spread_reports(client, clock, copiers, number=target)  # copying the published list
    trust.review(store)
    assert {store.redis.hget(store.keys.device(device_id(h)), "st") or "0" for h, _ in copiers} == {"0"}
    spread_reports(client, clock, copiers, number=OTHER)
    assert shown(client, device, OTHER)["verdict"] == "warn"


@BURST
def test_retagging_from_informational_to_spam_feeds_the_burst_guard(client, device):
    addresses = networks(10)
    reporters = [register(client, address) for address in addresses]
    for headers, address in zip(reporters, addresses):
        report(client, headers, tag="delivery", address=address)
    for headers, address in zip(reporters, addresses):
        report(client, headers, tag="fraud", address=address)
    body = shown(client, device)
    assert (body["verdict"], body["held"]) == ("warn", True)


def test_a_vote_of_weight_zero_changes_no_verdict_and_no_statistics(client, store, device):
    silent = register(client)
    store.redis.hset(store.keys.device(device_id(silent)), "w", 0)
    report(client, silent, tag="fraud")
    body = shown(client, device)
    assert (body["verdict"], body["reporters"], body["score"]) == ("unknown", 0, 0.0)
    admin_key = {"Authorization": f"Bearer {apikeys.create(store, 'stats', 'admin')}"}
    assert client.get("/v1/stats", headers=admin_key).get_json()["reports"] == 0


def test_a_voter_reweighed_to_zero_leaves_its_number_unknown(store):
    votes(store, weights=(100,))
    reweigh_votes(store, [NUMBER], "v0000000", 0)
    assert (lookup(store, NUMBER)["verdict"], lookup(store, NUMBER)["reporters"]) == ("unknown", 0)
    reweigh_votes(store, [NUMBER], "v0000000", 100)
    assert (lookup(store, NUMBER)["verdict"], lookup(store, NUMBER)["reporters"]) == ("warn", 1)


@guarded(human_daily_tags=100)
def test_churning_tags_on_one_number_counts_once_keeps_bounded_details_and_trips_the_rate_guard(client, store):
    churner = register(client)
    for _ in range(2):
        items = [{"number": NUMBER, "tag": ("fraud", "health")[i % 2], "note": "again"} for i in range(500)]
        assert client.post("/v1/reports/batch", json={"reports": items}, headers=churner).status_code == 200
    admin_key = {"Authorization": f"Bearer {apikeys.create(store, 'stats', 'admin')}"}
    assert client.get("/v1/stats", headers=admin_key).get_json()["reports"] == 1
    details = store.redis.xlen(store.keys.details(store.keys.bucket_of(NUMBER)))
    assert details == 1
    trust.review(store)
    assert weight_of(store, churner) == "0"


def test_a_report_in_flight_when_its_device_is_erased_leaves_no_tally(client, store, redis_client):
    headers = register(client)
    report(client, headers)
    assert client.delete("/v1/devices/me", headers=headers).status_code == 200
    trust.note_votes(store, device_id(headers), [NUMBER])  # what the report's last step would do
    assert not list(redis_client.scan_iter(match="cm:d[ta]:*"))  # no tally names the device
    trust.review(store)  # its queue entry, the device id alone, goes at the next review
    assert trust_traces(redis_client, store, headers) == []
