"""Do-Not-Call violations (blocklist/violations.py, the g<voter> flags and k count of
lua/report.lua): a marketing report for a call to the device's registered number that refuses
it, past the grace days, outside the accept windows and without the company's consent. It
counts while the vote does, shows in GET /v1/numbers and the feed, and never moves a verdict."""
from __future__ import annotations

import json

import pytest

from blocklist import apikeys, devices, dnc, dnc_stats, reputation
from blocklist.devices import Device
from tests.conftest import START
from tests.support import redis_state
from tests.test_devices import everything_in_redis
from tests.test_dnc import LOS_ANGELES, SHANGHAI, SHANGHAI_2, Phone, utc

CALLER = "+8613700137000"  # the telemarketer
CALLER_2 = "+8613600136000"
ALL = {"refuse": "all"}
DAY = 86400
# START is a Wednesday; START + 31 days (the grace) a Saturday, 08:00 in Shanghai.
SATURDAY_MORNING = {"refuse": ["loan"], "accept_windows": [
    {"days": ["sat"], "from": "10:00", "to": "12:00", "categories": ["loan"]}]}


def device_of(headers: dict[str, str]) -> Device:
    device_id = headers["Authorization"].split()[1].split(".")[0]
    return Device(device_id, 100, START)


def register(store, headers, number: str = SHANGHAI, preferences=ALL) -> None:
    phone = Phone()
    device = device_of(headers)
    started = dnc.start_verification(store, device, number, phone)
    dnc.register(store, device, started["verification_id"], phone.code(), preferences)


def report(client, headers, tag: str = "loan", number: str = CALLER, **extra) -> dict:
    response = client.post("/v1/reports", json={"number": number, "tag": tag, **extra}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def violations(client, headers, number: str = CALLER) -> int:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["dnc_violations"]


def flags(store, number: str = CALLER) -> dict[str, str]:
    """The number's violation fields: g<voter> flags and the k count."""
    fields = store.redis.hgetall(store.keys.number(number))
    return {name: value for name, value in fields.items() if name == "k" or len(name) == 9}


@pytest.fixture
def past_grace(store, clock):
    def advance() -> None:
        clock.advance(days=store.config.dnc_grace_days + 1)
    return advance


@pytest.fixture
def registrant(store, new_device):
    """A device whose number SHANGHAI refuses every marketing call."""
    headers = new_device()
    register(store, headers)
    return headers


# --- what is a violation ------------------------------------------------------------------------

def test_a_marketing_call_to_a_refusing_number_past_the_grace_days_is_a_violation(client, store, registrant,
                                                                                  new_device, past_grace):
    other = new_device()
    register(store, other, SHANGHAI_2)
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    assert violations(client, registrant) == 1
    report(client, other, tag="telemarketing", called_number="13912345678")  # national form, default region
    assert violations(client, registrant) == 2
    report(client, registrant, called_number=SHANGHAI)  # the same device again: distinct reporters
    assert violations(client, registrant) == 2
    assert violations(client, registrant, CALLER_2) == 0


def test_a_call_within_the_grace_days_is_no_violation(client, store, clock, registrant):
    clock.advance(days=store.config.dnc_grace_days - 1)
    report(client, registrant, called_number=SHANGHAI)
    assert violations(client, registrant) == 0
    assert flags(store) == {}


def test_a_call_dated_within_the_grace_days_is_no_violation(client, store, registrant, past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI, call={"at": "2026-11-01T12:00:00+08:00"})
    assert violations(client, registrant) == 0


def test_a_call_inside_an_accept_window_is_no_violation_and_outside_one_is(client, store, clock, new_device):
    inside, outside = new_device(), new_device()
    register(store, inside, SHANGHAI, SATURDAY_MORNING)
    register(store, outside, SHANGHAI_2, SATURDAY_MORNING)
    clock.advance(days=40)
    # Saturday 11:00 in Shanghai (03:00 UTC), past the grace days: the window covers it.
    report(client, inside, called_number=SHANGHAI, call={"at": "2026-11-28T11:00:00+08:00"})
    assert violations(client, inside) == 0
    # 13:00 that Saturday is after the window.
    report(client, outside, called_number=SHANGHAI_2, call={"at": "2026-11-28T05:00:00Z"})
    assert violations(client, inside) == 1


def test_the_window_is_read_in_the_numbers_time_zone(client, store, clock, new_device):
    headers = new_device()
    register(store, headers, LOS_ANGELES, SATURDAY_MORNING)
    clock.advance(days=40)
    # Saturday 11:00 in Shanghai is Friday 19:00 in Los Angeles: outside its window.
    report(client, headers, called_number=LOS_ANGELES, call={"at": "2026-11-28T11:00:00+08:00"})
    assert violations(client, headers) == 1


def test_a_call_time_in_the_future_counts_as_the_time_of_the_report(client, store, clock, new_device):
    headers = new_device()
    register(store, headers, SHANGHAI, SATURDAY_MORNING)
    clock.advance(days=40)  # a Monday
    report(client, headers, called_number=SHANGHAI, call={"at": "2026-12-12T11:00:00+08:00"})  # a window, ahead
    assert violations(client, headers) == 1


def test_a_consent_of_the_calling_company_excuses_the_call(client, store, registrant, past_grace):
    dnc.add_consent(store, device_of(registrant).id, SHANGHAI, "Acme Loans", ["loan"])
    past_grace()
    report(client, registrant, called_number=SHANGHAI, company="ＡＣＭＥ LOANS")  # NFKC and case folding
    assert violations(client, registrant) == 0
    report(client, registrant, number=CALLER_2, called_number=SHANGHAI, company="Other Loans")
    assert violations(client, registrant, CALLER_2) == 1


def test_a_consent_for_another_category_or_without_a_company_excuses_nothing(client, store, registrant,
                                                                             past_grace):
    dnc.add_consent(store, device_of(registrant).id, SHANGHAI, "Acme", ["insurance"])
    past_grace()
    report(client, registrant, called_number=SHANGHAI, company="acme")
    report(client, registrant, number=CALLER_2, called_number=SHANGHAI)
    assert violations(client, registrant) == 1
    assert violations(client, registrant, CALLER_2) == 1


def test_a_non_marketing_tag_or_a_category_not_refused_is_no_violation(client, store, new_device, past_grace):
    headers = new_device()
    register(store, headers, SHANGHAI, {"refuse": ["real_estate"]})
    past_grace()
    report(client, headers, tag="fraud", called_number=SHANGHAI)
    report(client, headers, tag="loan", number=CALLER_2, called_number=SHANGHAI)
    assert violations(client, headers) == 0
    assert violations(client, headers, CALLER_2) == 0
    report(client, headers, tag="real_estate", number=CALLER_2, called_number=SHANGHAI)
    assert violations(client, headers, CALLER_2) == 1


def test_an_unregistered_or_another_devices_called_number_is_no_violation(client, store, registrant,
                                                                          new_device, past_grace):
    past_grace()
    stranger = new_device()
    report(client, stranger, called_number=SHANGHAI)  # registered, but not by this device
    report(client, registrant, number=CALLER_2, called_number=SHANGHAI_2)  # not registered at all
    assert violations(client, registrant) == 0
    assert violations(client, registrant, CALLER_2) == 0


def test_without_called_number_only_a_device_with_one_registration_records_a_violation(
        client, store, registrant, new_device, past_grace):
    two, none = new_device(), new_device()
    register(store, two, SHANGHAI_2)
    register(store, two, LOS_ANGELES)
    past_grace()
    report(client, registrant)
    assert violations(client, registrant) == 1
    report(client, two)
    report(client, none)
    assert violations(client, registrant) == 1


def test_a_bad_called_number_is_400_and_writes_nothing(client, registrant, redis_client):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": CALLER, "tag": "loan", "called_number": "12"},
                           headers=registrant)
    assert response.status_code == 400
    assert redis_state(redis_client) == before


def test_a_batch_flags_each_violating_report(client, store, registrant, past_grace):
    past_grace()
    response = client.post("/v1/reports/batch", headers=registrant, json={"reports": [
        {"number": CALLER, "tag": "loan", "called_number": SHANGHAI},
        {"number": CALLER_2, "tag": "fraud", "called_number": SHANGHAI},
        {"number": "+8613500135000", "tag": "insurance"},
    ]})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [violations(client, registrant, n) for n in (CALLER, CALLER_2, "+8613500135000")] == [1, 0, 1]


# --- it counts while the vote does -------------------------------------------------------------

def test_a_withdrawn_vote_stops_counting(client, store, registrant, past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    assert set(flags(store)) == {"k", "g" + devices.voter_field(store.secret, device_of(registrant).id)}
    assert client.delete(f"/v1/reports/{CALLER}", headers=registrant).status_code == 200
    assert violations(client, registrant) == 0
    assert not store.redis.exists(store.keys.number(CALLER))


def test_a_withdrawn_vote_leaves_the_other_violations(client, store, registrant, new_device, past_grace):
    other = new_device()
    register(store, other, SHANGHAI_2)
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    report(client, other, called_number=SHANGHAI_2)
    client.delete(f"/v1/reports/{CALLER}", headers=registrant)
    assert violations(client, other) == 1
    assert flags(store) == {"k": "1", "g" + devices.voter_field(store.secret, device_of(other).id): "1"}


def test_a_retag_without_a_violation_clears_it_and_one_with_it_sets_it(client, store, registrant, past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    report(client, registrant, tag="fraud", called_number=SHANGHAI)
    assert violations(client, registrant) == 0 and flags(store) == {}
    report(client, registrant, tag="insurance", called_number=SHANGHAI)
    assert violations(client, registrant) == 1
    report(client, registrant, tag="telemarketing", called_number=SHANGHAI)  # still one violation, one reporter
    assert violations(client, registrant) == 1


def test_a_repeated_tag_that_now_names_the_called_number_flags_the_vote(client, store, registrant, new_device,
                                                                          past_grace):
    register(store, registrant, SHANGHAI_2)  # two registrations: a report must say which number rang
    past_grace()
    assert report(client, registrant)["duplicate"] is False
    assert violations(client, registrant) == 0
    assert report(client, registrant, called_number=SHANGHAI_2)["duplicate"] is True
    assert violations(client, registrant) == 1
    report(client, registrant)  # a repeat that shows no violation takes nothing back
    assert violations(client, registrant) == 1


def test_a_vote_retired_by_age_stops_counting(client, store, clock, registrant, new_device, past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    clock.advance(days=4 * store.config.half_life_days + 2)
    reputation.sweep(store)
    assert violations(client, registrant) == 0
    assert flags(store) == {}


def test_a_vote_of_weight_zero_stops_counting_and_counts_again_with_its_weight(client, store, registrant,
                                                                               past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    voter = devices.voter_field(store.secret, device_of(registrant).id)
    reputation.reweigh_votes(store, [CALLER], voter, 0)
    assert violations(client, registrant) == 0
    reputation.reweigh_votes(store, [CALLER], voter, 100)
    assert violations(client, registrant) == 1


def test_an_erased_device_takes_its_violations_with_it(client, store, registrant, new_device, past_grace):
    other = new_device()
    register(store, other, SHANGHAI_2)
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    report(client, other, called_number=SHANGHAI_2)
    assert client.delete("/v1/devices/me", headers=registrant).status_code in (200, 204)
    assert violations(client, other) == 1
    assert flags(store)["k"] == "1"


# --- what is kept and shown ---------------------------------------------------------------------

def test_the_called_number_is_never_stored(client, store, redis_client, new_device, past_grace):
    headers = new_device()
    register(store, headers, SHANGHAI_2)
    past_grace()
    for called in (SHANGHAI_2, "13912345678", LOS_ANGELES, SHANGHAI):  # registered or not, in any form
        report(client, headers, called_number=called, company="Acme", note="a loan offer",
               call={"at": "2026-11-29T10:00:00Z", "answered": True})
    assert violations(client, headers) == 1
    stored = "\n".join(everything_in_redis(redis_client))
    for digits in ("13912345678", "14155552671", "13800138000", "4155552671"):
        assert digits not in stored


def test_the_verdict_is_the_same_with_and_without_violations(client, store, redis_client, new_device,
                                                             past_grace):
    reporters = [new_device() for _ in range(3)]
    for i, headers in enumerate(reporters):
        register(store, headers, f"+861391234567{i}")
    past_grace()
    for i, headers in enumerate(reporters):
        report(client, headers, number=CALLER, called_number=f"+861391234567{i}")
        report(client, headers, number=CALLER_2)
    with_violations = client.get(f"/v1/numbers/{CALLER}", headers=reporters[0]).get_json()
    without = client.get(f"/v1/numbers/{CALLER_2}", headers=reporters[0]).get_json()
    assert (with_violations.pop("dnc_violations"), without.pop("dnc_violations")) == (3, 3)
    # the second number's reports came without called_number: each device has one registration
    for_both = {key: value for key, value in with_violations.items() if key != "number"}
    assert for_both == {key: value for key, value in without.items() if key != "number"}
    assert with_violations["verdict"] == "block"


def test_a_violation_moves_no_verdict_score_or_change_log_entry(client, store, redis_client, new_device,
                                                                 past_grace):
    flagged, plain = new_device(), new_device()
    register(store, flagged, SHANGHAI)
    past_grace()
    report(client, flagged, number=CALLER, called_number=SHANGHAI)
    report(client, plain, number=CALLER_2)
    one = client.get(f"/v1/numbers/{CALLER}", headers=plain).get_json()
    two = client.get(f"/v1/numbers/{CALLER_2}", headers=plain).get_json()
    assert (one.pop("dnc_violations"), two.pop("dnc_violations")) == (1, 0)
    assert {k: v for k, v in one.items() if k != "number"} == {k: v for k, v in two.items() if k != "number"}
    entries = {fields["n"]: {k: v for k, v in fields.items() if k != "n"}
               for bucket in {store.keys.bucket_of(CALLER), store.keys.bucket_of(CALLER_2)}
               for _, fields in redis_client.xrange(store.keys.changes(bucket))}
    assert entries[CALLER] == entries[CALLER_2]


def test_the_feed_and_the_export_carry_the_violations(client, store, registrant, new_device, past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI)
    report(client, new_device(), number=CALLER_2)
    key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    response = client.get("/v1/feed", headers=key)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert {c["number"]: c["dnc_violations"] for c in response.get_json()["changes"]} == {CALLER: 1, CALLER_2: 0}
    export = client.get("/v1/feed/export", headers=key)
    assert export.status_code == 200
    lines = [line for line in export.get_data(as_text=True).splitlines() if '"number"' in line]
    assert {r["number"]: r["dnc_violations"] for r in map(json.loads, lines)} == {CALLER: 1, CALLER_2: 0}


def test_the_statistics_count_each_new_violation_by_category_and_day_of_the_call(client, store, registrant,
                                                                                  past_grace):
    past_grace()
    report(client, registrant, called_number=SHANGHAI, call={"at": "2026-11-28T10:00:00Z"})  # the day before
    report(client, registrant, called_number=SHANGHAI)  # a repeat is not a new violation
    report(client, registrant, number=CALLER_2, tag="fraud", called_number=SHANGHAI)  # nor a non-marketing tag
    report(client, registrant, number=CALLER_2, tag="insurance", called_number=SHANGHAI)  # a retag that is one
    day, today = store.redis.hgetall(store.keys.dnc_stats_day(dnc_stats.day_of(utc("2026-11-28")))), \
        store.redis.hgetall(store.keys.dnc_stats_day(dnc_stats.day_of(store.clock())))
    assert (day.get("v:loan"), today.get("v:loan"), today.get("v:insurance")) == ("1", None, "1")
    assert "v:fraud" not in today
