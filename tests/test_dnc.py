"""The Do-Not-Call registry's domain (blocklist/dnc.py): verification, registration and its
preferences, consents, the scrub, quotas, receipts, erasure, and a keyspace without numbers."""
from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone

import pytest

from blocklist import devices, dnc, tags
from blocklist.devices import Device
from blocklist.errors import (NotRegistered, SmsFailed, Unauthorized, UnknownConsent, ValidationFailed,
                              VerificationFailed)
from blocklist.keyed import keyed
from sync.signing import iso
from tests.conftest import START
from tests.support import redis_state
from tests.test_devices import everything_in_redis

SHANGHAI = "+8613800138000"  # Asia/Shanghai, UTC+8
SHANGHAI_2 = "+8613912345678"
LOS_ANGELES = "+14155552671"  # America/Los_Angeles
TOKYO = "+81312345678"
ALL = {"refuse": "all"}
DAY = 86400


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class Phone:
    """A text inbox: the `send` of start_verification."""

    def __init__(self):
        self.texts: list[tuple[str, str]] = []

    def __call__(self, to: str, text: str) -> None:
        self.texts.append((to, text))

    def code(self) -> str:
        return re.search(r"\b\d{6}\b", self.texts[-1][1]).group()


def new_device(store) -> Device:
    device_id, _ = devices.register(store)
    return Device(device_id, 100, store.clock())


@pytest.fixture
def phone() -> Phone:
    return Phone()


@pytest.fixture
def device(store) -> Device:
    return new_device(store)


def register(store, device: Device, number: str, preferences=ALL, phone: Phone | None = None) -> dict:
    phone = phone or Phone()
    started = dnc.start_verification(store, device, number, phone)
    return dnc.register(store, device, started["verification_id"], phone.code(), preferences)


def scrub_one(store, number: str, category: str = "loan", organization: str = "acme", at: float | None = None):
    (_, callable_, reason), = dnc.scrub(store, organization, category, store.clock() if at is None else at, [number])
    return callable_, reason


# --- the taxonomy ------------------------------------------------------------------------------

def test_marketing_tags_are_flagged_and_fraud_debt_collection_harassment_are_not():
    assert set(dnc.MARKETING) == {"loan", "securities", "real_estate", "insurance", "education", "recruitment",
                                  "health", "travel", "housekeeping", "telemarketing"}
    described = {tag["code"]: tag["marketing"] for tag in tags.describe()}
    assert not described["fraud"] and not described["debt_collection"] and not described["harassment"]
    assert described["loan"] and described["telemarketing"]


# --- verification --------------------------------------------------------------------------------

def test_verification_texts_a_six_digit_code_and_keeps_neither_code_nor_number(store, redis_client, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    assert started["expires_at"] == iso(START + 600)
    assert phone.texts[0][0] == SHANGHAI
    code = phone.code()
    stored = everything_in_redis(redis_client)
    assert not [text for text in stored if code in text or "13800138000" in text]


def test_a_failing_sender_leaves_nothing(store, redis_client, device):
    before = redis_state(redis_client)

    def broken(to: str, text: str) -> None:
        raise SmsFailed("the gateway did not answer")

    with pytest.raises(SmsFailed):
        dnc.start_verification(store, device, SHANGHAI, broken)
    assert redis_state(redis_client) == before


def test_register_answers_dates_and_preferences(store, device):
    answer = register(store, device, SHANGHAI, {"refuse": ["insurance", "loan"]})
    assert answer == {
        "number": SHANGHAI,
        "registered_at": iso(START),
        "effective_at": iso(START + 31 * DAY),
        "expires_at": iso(START + 730 * DAY),
        "preferences": {"refuse": ["loan", "insurance"], "accept_windows": []},
    }
    assert dnc.registrations_of(store, device.id) == [answer]


def test_a_wrong_code_spends_one_attempt_and_five_use_the_verification_up(store, redis_client, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    wrong = f"{(int(phone.code()) + 1) % 10**6:06d}"
    key = store.keys.dnc_verification(started["verification_id"])
    for left in (4, 3, 2, 1, 0):
        before = redis_state(redis_client)
        with pytest.raises(VerificationFailed) as failed:
            dnc.register(store, device, started["verification_id"], wrong, ALL)
        assert failed.value.details == {"attempts_left": left}
        after = redis_state(redis_client)
        assert {k for k in after if after[k] != before.get(k)} == {key}  # only the attempts moved
    before = redis_state(redis_client)
    with pytest.raises(VerificationFailed, match="used up"):
        dnc.register(store, device, started["verification_id"], phone.code(), ALL)
    assert redis_state(redis_client) == before
    assert scrub_one(store, SHANGHAI) == (True, "")


def test_a_code_expires_after_ten_minutes(store, redis_client, clock, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    clock.advance(seconds=600)
    before = redis_state(redis_client)
    with pytest.raises(VerificationFailed, match="expired"):
        dnc.register(store, device, started["verification_id"], phone.code(), ALL)
    assert redis_state(redis_client) == before


def test_a_code_works_once(store, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    dnc.register(store, device, started["verification_id"], phone.code(), ALL)
    with pytest.raises(VerificationFailed, match="no such verification"):
        dnc.register(store, device, started["verification_id"], phone.code(), ALL)


@pytest.mark.parametrize("verification_id, code", [("nope", "123456"), ("x" * 65, "123456"), (None, "123456"),
                                                   ("ok", "12345"), ("ok", 123456), ("ok", "12345a")])
def test_unknown_verifications_and_malformed_codes_write_nothing(store, redis_client, device, phone,
                                                                 verification_id, code):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    before = redis_state(redis_client)
    with pytest.raises(VerificationFailed):
        dnc.register(store, device, started["verification_id"] if verification_id == "ok" else verification_id,
                     code, ALL)
    assert redis_state(redis_client) == before


def test_another_devices_verification_is_unknown_and_untouched(store, redis_client, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    other = new_device(store)
    before = redis_state(redis_client)
    with pytest.raises(VerificationFailed, match="no such verification"):
        dnc.register(store, other, started["verification_id"], phone.code(), ALL)
    assert redis_state(redis_client) == before
    dnc.register(store, device, started["verification_id"], phone.code(), ALL)


@pytest.mark.parametrize("preferences", [
    None, {}, {"refuse": "some"}, {"refuse": []}, {"refuse": ["fraud"]}, {"refuse": ["loan", "debt_collection"]},
    {"refuse": ["harassment"]}, {"refuse": "all", "other": 1},
    {"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "9:00", "to": "17:00"}]},
    {"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "24:00", "to": "17:00"}]},
    {"refuse": "all", "accept_windows": [{"days": ["monday"], "from": "09:00", "to": "17:00"}]},
    {"refuse": "all", "accept_windows": [{"days": [], "from": "09:00", "to": "17:00"}]},
    {"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00", "to": "17:00", "categories": ["fraud"]}]},
    {"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00", "to": "17:60"}]},
    {"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00", "to": "17:00"}] * 9},
])
def test_bad_preferences_are_refused_before_the_code_is_tried(store, redis_client, device, phone, preferences):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    before = redis_state(redis_client)
    with pytest.raises(ValidationFailed):
        dnc.register(store, device, started["verification_id"], phone.code(), preferences)
    assert redis_state(redis_client) == before  # not even an attempt spent
    dnc.register(store, device, started["verification_id"], phone.code(), ALL)


def test_an_erased_device_cannot_register(store, device, phone):
    started = dnc.start_verification(store, device, SHANGHAI, phone)
    devices.erase(store, device.id)
    with pytest.raises(Unauthorized):
        dnc.register(store, device, started["verification_id"], phone.code(), ALL)
    assert scrub_one(store, SHANGHAI) == (True, "")


# --- preferences in the scrub ----------------------------------------------------------------------

def test_refusing_all_refuses_every_marketing_category(store, device):
    register(store, device, SHANGHAI, ALL)
    for category in dnc.MARKETING:
        assert scrub_one(store, SHANGHAI, category) == (False, "registered")
    assert scrub_one(store, SHANGHAI_2) == (True, "")


def test_refusing_categories_refuses_only_those(store, device):
    register(store, device, SHANGHAI, {"refuse": ["loan", "real_estate"]})
    assert scrub_one(store, SHANGHAI, "loan") == (False, "category")
    assert scrub_one(store, SHANGHAI, "real_estate") == (False, "category")
    assert scrub_one(store, SHANGHAI, "insurance") == (True, "")


def test_the_scrub_refuses_a_category_that_is_not_marketing(store):
    for category in ("fraud", "debt_collection", "harassment", "nonsense"):
        with pytest.raises(ValidationFailed):
            list(dnc.scrub(store, "acme", category, START, [SHANGHAI]))


WORKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00", "categories": ["loan"]}


def test_inside_an_accept_window_a_refused_category_is_callable(store, device):
    answer = register(store, device, SHANGHAI, {"refuse": ["loan", "insurance"], "accept_windows": [WORKDAYS]})
    assert answer["preferences"]["accept_windows"] == [WORKDAYS]
    wednesday = utc("2026-10-28T02:00:00")  # 10:00 in Shanghai
    assert scrub_one(store, SHANGHAI, "loan", at=wednesday) == (True, "")
    assert scrub_one(store, SHANGHAI, "loan", at=wednesday + 9 * 3600) == (False, "outside_window")  # 19:00
    assert scrub_one(store, SHANGHAI, "loan", at=wednesday + 3 * DAY) == (False, "outside_window")  # Saturday
    assert scrub_one(store, SHANGHAI, "insurance", at=wednesday) == (False, "category")  # not its window's


def test_a_window_ends_before_its_to_minute(store, device):
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [WORKDAYS]})
    assert scrub_one(store, SHANGHAI, "loan", at=utc("2026-10-28T01:00:00")) == (True, "")  # 09:00
    assert scrub_one(store, SHANGHAI, "loan", at=utc("2026-10-28T09:59:59")) == (True, "")  # 17:59:59
    assert scrub_one(store, SHANGHAI, "loan", at=utc("2026-10-28T10:00:00")) == (False, "outside_window")


def test_a_window_across_midnight_runs_into_the_next_day(store, device):
    late = {"days": ["fri"], "from": "22:00", "to": "02:00"}  # every marketing category
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [late]})
    friday = utc("2026-10-30T00:00:00") - 8 * 3600  # Friday 00:00 in Shanghai
    expected = {"22:30": (True, ""), "23:59": (True, ""), "24:00": (True, ""), "25:59": (True, ""),
                "26:00": (False, "outside_window"), "21:59": (False, "outside_window"),
                "01:00": (False, "outside_window")}  # Friday 01:00 follows Thursday
    for clock_time, answer in expected.items():
        hours, minutes = map(int, clock_time.split(":"))
        assert scrub_one(store, SHANGHAI, "travel", at=friday + hours * 3600 + minutes * 60) == answer, clock_time


def test_a_window_to_24_00_ends_at_midnight_and_equal_ends_mean_a_whole_day(store, device):
    evening = {"days": ["wed"], "from": "20:00", "to": "24:00"}
    day = {"days": ["sat"], "from": "06:00", "to": "06:00"}
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [evening, day]})
    wednesday = utc("2026-10-28T00:00:00") - 8 * 3600
    assert scrub_one(store, SHANGHAI, at=wednesday + 23.99 * 3600) == (True, "")
    assert scrub_one(store, SHANGHAI, at=wednesday + 24 * 3600) == (False, "outside_window")
    saturday = wednesday + 3 * DAY
    assert scrub_one(store, SHANGHAI, at=saturday + 5.99 * 3600) == (False, "outside_window")
    assert scrub_one(store, SHANGHAI, at=saturday + 6 * 3600) == (True, "")
    assert scrub_one(store, SHANGHAI, at=saturday + 29.99 * 3600) == (True, "")  # Sunday 05:59
    assert scrub_one(store, SHANGHAI, at=saturday + 30 * 3600) == (False, "outside_window")


def test_windows_are_in_each_numbers_own_time_zone(store, device):
    mornings = {"refuse": "all", "accept_windows": [{"days": ["wed"], "from": "09:00", "to": "12:00"}]}
    register(store, device, SHANGHAI, mornings)
    register(store, device, LOS_ANGELES, mornings)
    register(store, device, TOKYO, mornings)
    shanghai_morning = utc("2026-10-28T02:00:00")  # Wed 10:00 Shanghai, 11:00 Tokyo, Tue 19:00 Los Angeles
    results = dict((number, reason) for number, _, reason in dnc.scrub(
        store, "acme", "loan", shanghai_morning, [SHANGHAI, TOKYO, LOS_ANGELES]))
    assert results == {SHANGHAI: "", TOKYO: "", LOS_ANGELES: "outside_window"}
    la_morning = utc("2026-10-28T17:00:00")  # Wed 10:00 in Los Angeles (PDT), Thu 01:00 Shanghai
    results = dict((number, reason) for number, _, reason in dnc.scrub(
        store, "acme", "loan", la_morning, [SHANGHAI, TOKYO, LOS_ANGELES]))
    assert results == {SHANGHAI: "outside_window", TOKYO: "outside_window", LOS_ANGELES: ""}


def test_summer_time_moves_a_window(store, device):
    register(store, device, LOS_ANGELES, {"refuse": "all", "accept_windows": [
        {"days": ["wed"], "from": "09:00", "to": "10:00"}]})
    assert scrub_one(store, LOS_ANGELES, at=utc("2026-10-28T16:30:00")) == (True, "")  # PDT: 09:30
    assert scrub_one(store, LOS_ANGELES, at=utc("2026-11-04T16:30:00")) == (False, "outside_window")  # PST: 08:30
    assert scrub_one(store, LOS_ANGELES, at=utc("2026-11-04T17:30:00")) == (True, "")


# --- change, remove, expire, take over ---------------------------------------------------------------

def test_an_update_applies_at_once(store, device):
    register(store, device, SHANGHAI, ALL)
    answer = dnc.update(store, device.id, SHANGHAI, {"refuse": ["insurance"]})
    assert answer["preferences"] == {"refuse": ["insurance"], "accept_windows": []}
    assert answer["registered_at"] == iso(START)
    assert scrub_one(store, SHANGHAI, "loan") == (True, "")
    assert scrub_one(store, SHANGHAI, "insurance") == (False, "category")
    dnc.update(store, device.id, SHANGHAI, {"refuse": ["insurance"], "accept_windows": [
        {"days": ["wed"], "from": "00:00", "to": "24:00", "categories": ["insurance"]}]})
    assert scrub_one(store, SHANGHAI, "insurance", at=utc("2026-10-28T02:00:00")) == (True, "")
    dnc.update(store, device.id, SHANGHAI, ALL)
    assert scrub_one(store, SHANGHAI, "insurance", at=utc("2026-10-28T02:00:00")) == (False, "registered")
    assert not store.redis.hlen(store.keys.dnc_windows(dnc.place(store, SHANGHAI).group))


def test_only_the_owner_may_update_or_remove_and_a_refusal_writes_nothing(store, redis_client, device):
    register(store, device, SHANGHAI, ALL)
    other = new_device(store)
    before = redis_state(redis_client)
    with pytest.raises(NotRegistered):
        dnc.update(store, other.id, SHANGHAI, {"refuse": ["loan"]})
    with pytest.raises(NotRegistered):
        dnc.remove(store, other.id, SHANGHAI)
    with pytest.raises(NotRegistered):
        dnc.remove(store, device.id, SHANGHAI_2)
    with pytest.raises(ValidationFailed):
        dnc.update(store, device.id, SHANGHAI, {"refuse": ["fraud"]})
    assert redis_state(redis_client) == before


def test_remove_ends_the_registration_and_forgets_the_number(store, redis_client, device):
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [WORKDAYS]})
    dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    dnc.remove(store, device.id, SHANGHAI)
    assert scrub_one(store, SHANGHAI) == (True, "")
    assert dnc.registrations_of(store, device.id) == []
    assert dnc.consents_of(store, device.id) == []
    left = [key for key in redis_client.scan_iter("cm:dnc:*") if key != store.keys.dnc_zones()]
    assert left == []


def test_a_registration_expires_unless_verified_again(store, clock, device):
    register(store, device, SHANGHAI, ALL)
    clock.advance(days=700)
    renewed = register(store, device, SHANGHAI, {"refuse": ["loan"]})
    assert renewed["registered_at"] == iso(START)
    assert renewed["expires_at"] == iso(START + 1430 * DAY)
    clock.advance(days=729)
    assert scrub_one(store, SHANGHAI) == (False, "category")
    clock.advance(days=1)
    assert scrub_one(store, SHANGHAI) == (True, "")
    assert dnc.registrations_of(store, device.id) == []
    with pytest.raises(NotRegistered):
        dnc.update(store, device.id, SHANGHAI, ALL)
    again = register(store, device, SHANGHAI, ALL)
    assert again["registered_at"] == iso(clock.now)


def test_a_new_device_verifying_the_number_takes_the_registration_over(store, redis_client, device):
    register(store, device, SHANGHAI, ALL)
    dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    assert scrub_one(store, SHANGHAI, organization="acme") == (True, "consent")
    new_phone = new_device(store)
    answer = register(store, new_phone, SHANGHAI, {"refuse": ["loan"]})
    assert answer["registered_at"] == iso(START)
    assert [r["number"] for r in dnc.registrations_of(store, new_phone.id)] == [SHANGHAI]
    assert dnc.registrations_of(store, device.id) == []
    assert scrub_one(store, SHANGHAI, organization="acme") == (False, "category")  # the old device's consent
    with pytest.raises(NotRegistered):
        dnc.remove(store, device.id, SHANGHAI)
    devices.erase(store, device.id)
    assert scrub_one(store, SHANGHAI) == (False, "category")  # the new owner's stays
    assert dnc.registrations_of(store, new_phone.id) == [answer]


# --- consents ------------------------------------------------------------------------------------

def test_consent_lets_one_organisation_call_in_its_categories(store, device):
    register(store, device, SHANGHAI, ALL)
    consent = dnc.add_consent(store, device.id, SHANGHAI, "Acme Bank", ["loan", "insurance"])
    assert consent == {"consent_id": consent["consent_id"], "number": SHANGHAI, "organization": "Acme Bank",
                       "categories": ["loan", "insurance"], "created_at": iso(START)}
    assert re.fullmatch(r"[0-9a-f]{16}", consent["consent_id"])
    assert dnc.consents_of(store, device.id) == [consent]
    assert scrub_one(store, SHANGHAI, "loan", "acme bank") == (True, "consent")
    assert scrub_one(store, SHANGHAI, "loan", "ＡＣＭＥ ＢＡＮＫ") == (True, "consent")  # NFKC, case folded
    assert scrub_one(store, SHANGHAI, "travel", "Acme Bank") == (False, "registered")
    assert scrub_one(store, SHANGHAI, "loan", "Other Bank") == (False, "registered")


def test_a_withdrawn_consent_counts_no_more(store, redis_client, device):
    register(store, device, SHANGHAI, ALL)
    consent = dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    dnc.withdraw_consent(store, device.id, consent["consent_id"])
    assert scrub_one(store, SHANGHAI, "loan", "Acme") == (False, "registered")
    assert dnc.consents_of(store, device.id) == []
    before = redis_state(redis_client)
    for consent_id in (consent["consent_id"], "0" * 16, "nope"):
        with pytest.raises(UnknownConsent):
            dnc.withdraw_consent(store, device.id, consent_id)
    assert redis_state(redis_client) == before


def test_another_devices_consent_cannot_be_withdrawn(store, redis_client, device):
    register(store, device, SHANGHAI, ALL)
    consent = dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    other = new_device(store)
    before = redis_state(redis_client)
    with pytest.raises(UnknownConsent):
        dnc.withdraw_consent(store, other.id, consent["consent_id"])
    assert redis_state(redis_client) == before


def test_a_second_consent_to_one_organisation_replaces_the_first(store, device):
    register(store, device, SHANGHAI, ALL)
    first = dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    second = dnc.add_consent(store, device.id, SHANGHAI, "ACME", ["travel"])
    assert [c["consent_id"] for c in dnc.consents_of(store, device.id)] == [second["consent_id"]]
    assert scrub_one(store, SHANGHAI, "loan", "acme") == (False, "registered")
    assert scrub_one(store, SHANGHAI, "travel", "acme") == (True, "consent")
    with pytest.raises(UnknownConsent):
        dnc.withdraw_consent(store, device.id, first["consent_id"])


@pytest.mark.parametrize("organization, categories", [("", ["loan"]), ("Acme", []), ("Acme", ["fraud"]),
                                                      (None, ["loan"]), ("x" * 201, ["loan"]), ("Acme", "loan")])
def test_bad_consents_write_nothing(store, redis_client, device, organization, categories):
    register(store, device, SHANGHAI, ALL)
    before = redis_state(redis_client)
    with pytest.raises(ValidationFailed):
        dnc.add_consent(store, device.id, SHANGHAI, organization, categories)
    with pytest.raises(NotRegistered):
        dnc.add_consent(store, device.id, SHANGHAI_2, "Acme", ["loan"])
    with pytest.raises(NotRegistered):
        dnc.add_consent(store, new_device(store).id, SHANGHAI, "Acme", ["loan"])
    after = redis_state(redis_client)
    assert {key for key in after if after[key] != before.get(key)} <= {key for key in after if ":dev:" in key}


# --- the scrub ------------------------------------------------------------------------------------

def test_the_scrub_keeps_order_and_reports_bad_lines_as_given(store, device):
    register(store, device, SHANGHAI, ALL)
    lines = ["13800138000", "", "not a number", "+861380013800", " +86 139 1234 5678 ", "+8613800138000\r",
             "12345678901234567890123456789012345678901", "\x00"]
    assert list(dnc.scrub(store, "acme", "loan", START, lines)) == [
        (SHANGHAI, False, "registered"),
        ("", False, "invalid_number"),
        ("not a number", False, "invalid_number"),
        ("+861380013800", False, "invalid_number"),
        (SHANGHAI_2, True, ""),
        (SHANGHAI, False, "registered"),
        ("12345678901234567890123456789012345678901", False, "invalid_number"),
        ("\x00", False, "invalid_number"),
    ]


def test_the_scrub_reads_lazily_in_batches(store, device):
    register(store, device, SHANGHAI, ALL)
    read = itertools.count()

    def lines():
        for i in range(3 * dnc.SCRUB_BATCH + 5):
            next(read)
            yield SHANGHAI if i % 1000 == 7 else f"+86139{i:08d}"

    results = dnc.scrub(store, "acme", "loan", START, lines())
    first = next(results)
    assert first == ("+8613900000000", True, "")
    assert next(read) <= dnc.SCRUB_BATCH + 1  # only the first batch was read
    rest = list(results)
    assert len(rest) == 3 * dnc.SCRUB_BATCH + 4
    refused = [i + 1 for i, (number, callable_, _) in enumerate(rest) if not callable_]
    assert refused == [i for i in range(3 * dnc.SCRUB_BATCH + 5) if i % 1000 == 7]


def test_a_scrub_writes_nothing(store, redis_client, device):
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [WORKDAYS]})
    dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["travel"])
    before = redis_state(redis_client)
    list(dnc.scrub(store, "acme", "loan", START, [SHANGHAI, SHANGHAI_2, "junk"]))
    assert redis_state(redis_client) == before


def test_the_scrub_hash_is_the_keyed_hash_of_the_number(store):
    digest = keyed(store.secret, "dnc", SHANGHAI)
    assert dnc.place(store, SHANGHAI) == dnc._place_of_digest(digest)
    assert dnc._Reader(store.secret, "CN").read("13800138000") == (SHANGHAI, digest)
    where = dnc.place(store, SHANGHAI)
    assert dnc._place_of_name(where.name) == where
    assert where.bucket < 2 ** dnc.BUCKET_BITS and where.group == where.bucket >> dnc.GROUP_SHIFT


# --- quota and receipts ----------------------------------------------------------------------------

def test_the_daily_quota_is_spent_whole_or_not_at_all(store, redis_client, clock):
    store.config = store.config.replace(scrub_daily_numbers=100)
    assert dnc.charge_quota(store, "acme", 60)
    before = redis_state(redis_client)
    assert not dnc.charge_quota(store, "acme", 41)
    assert redis_state(redis_client) == before
    assert dnc.charge_quota(store, "acme", 40)
    assert dnc.quota_used(store, "acme") == 100
    assert not dnc.charge_quota(store, "acme", 1)
    assert dnc.charge_quota(store, "other", 100)  # per key
    assert dnc.charge_quota(store, "acme", 0)
    clock.advance(days=1)
    assert dnc.quota_used(store, "acme") == 0
    assert dnc.charge_quota(store, "acme", 100)
    assert 0 < redis_client.ttl(store.keys.dnc_quota("acme", int(clock.now // DAY))) <= 2 * DAY


def test_receipts_are_listed_newest_first_for_their_key_only(store, clock):
    first = dnc.write_receipt(store, "acme", "loan", clock.now, 3, 2, "a" * 64)
    clock.advance(seconds=60)
    second = dnc.write_receipt(store, "acme", "travel", clock.now, 10, 0, "b" * 64)
    dnc.write_receipt(store, "other", "loan", clock.now, 1, 1, "c" * 64)
    assert first == {"receipt_id": first["receipt_id"], "organization": "acme", "at": iso(START),
                     "category": "loan", "count": 3, "callable": 2, "sha256": "a" * 64}
    assert dnc.receipts(store, "acme") == [second, first]
    assert first["receipt_id"] != second["receipt_id"]
    assert dnc.receipts(store, "nobody") == []


# --- erasure and the keyspace ------------------------------------------------------------------------

def test_erasing_the_device_removes_its_registrations_consents_and_numbers(store, redis_client, device):
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [WORKDAYS]})
    register(store, device, TOKYO, {"refuse": ["loan"]})
    dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    kept = new_device(store)
    register(store, kept, LOS_ANGELES, ALL)
    devices.erase(store, device.id)
    assert scrub_one(store, SHANGHAI) == scrub_one(store, TOKYO) == (True, "")
    assert scrub_one(store, LOS_ANGELES) == (False, "registered")
    assert not redis_client.exists(store.keys.dnc_device(device.id))
    assert not redis_client.hlen(store.keys.dnc_consents(dnc.place(store, SHANGHAI).group))
    assert not redis_client.hlen(store.keys.dnc_windows(dnc.place(store, SHANGHAI).group))
    assert dnc.registrations_of(store, device.id) == []


def number_forms(number: str) -> set[str]:
    """A number as text in every form a dump could show it: E.164, digits, national digits."""
    import phonenumbers

    parsed = phonenumbers.parse(number)
    national = str(parsed.national_number)
    return {number, number[1:], national, national[-8:],
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL).replace(" ", "")}


def test_no_registrant_number_is_anywhere_in_redis(store, redis_client, device, phone):
    register(store, device, SHANGHAI, {"refuse": "all", "accept_windows": [WORKDAYS]})
    register(store, device, LOS_ANGELES, {"refuse": ["loan", "travel"]})
    register(store, new_device(store), TOKYO, ALL)
    dnc.add_consent(store, device.id, SHANGHAI, "Acme", ["loan"])
    dnc.add_consent(store, device.id, LOS_ANGELES, "Other", ["travel"])
    dnc.start_verification(store, device, SHANGHAI_2, phone)  # pending
    results = list(dnc.scrub(store, "acme", "loan", START, [SHANGHAI, LOS_ANGELES, TOKYO, "13800138000"]))
    assert dnc.charge_quota(store, "acme", len(results))
    dnc.write_receipt(store, "acme", "loan", START, len(results), sum(r[1] for r in results), "0" * 64)
    stored = everything_in_redis(redis_client)
    assert len(stored) > 20
    for number in (SHANGHAI, SHANGHAI_2, LOS_ANGELES, TOKYO):
        for form in number_forms(number):
            assert not [text for text in stored if form in text], (number, form)
    # Read back through the device, as GET /v1/dnc/registrations/me does.
    assert [r["number"] for r in dnc.registrations_of(store, device.id)] == sorted([SHANGHAI, LOS_ANGELES])


# --- storage ---------------------------------------------------------------------------------------

def test_a_record_packs_into_seventeen_ascii_characters_and_back(store):
    record = dnc.Record(prefs=dnc.REFUSE_ALL_FLAG | dnc.WINDOWS_FLAG, region="CN", zone=1023,
                        registered=dnc._minute(START), verified=dnc._minute(START + 700 * DAY), device=2**32 - 1)
    packed = record.pack()
    assert len(packed) == dnc.RECORD_CHARS and packed.isascii()
    assert dnc.Record.unpack(packed) == record
    assert dnc.Record.unpack(dnc.Record(2, "", 0, dnc.EPOCH, dnc.EPOCH, 0).pack()).region == ""


def test_a_full_bucket_stays_in_the_compact_encoding(store, redis_client):
    key = store.keys.dnc_registrations(0, 0)
    record = dnc.Record(1, "CN", 1, dnc._minute(START), dnc._minute(START), 12345).pack()
    redis_client.hset(key, mapping={dnc._chars(i * 7919, dnc.FIELD_CHARS): record for i in range(120)})
    assert redis_client.object("encoding", key) in ("listpack", "ziplist")


def test_the_fast_path_answers_as_normalize_does():
    import random

    from blocklist.numbers import normalize
    from blocklist.errors import InvalidNumber

    rng = random.Random(12)
    prefixes = ["+86", "+861", "+1", "+44", "+39", "+390", "+7", "+78", "+49", "+81", "+91", "+33", "+61",
                "+852", "+886", "+55", "+52", "+234", "+800", "+882", "+979", "+3", "+999", "+262", "+599"]
    agreed = fast = 0
    for _ in range(20000):
        text = rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(rng.randrange(3, 13)))
        if not dnc._E164_SHAPE.fullmatch(text):
            continue
        try:
            expected = normalize(text, "CN")
        except InvalidNumber:
            expected = None
        answer = dnc.fast_e164(text)
        assert answer is None or answer == expected, text
        fast += answer is not None
        agreed += 1
    assert agreed > 15000 and fast > 1000
