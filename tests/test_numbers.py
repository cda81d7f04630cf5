"""Numbers: what a phone shows is normalised to E.164; anything else is refused with 400."""
from __future__ import annotations

import json

import pytest

from blocklist import numbers
from blocklist.errors import InvalidNumber
from tests.support import assert_error, redis_state

# (raw input, region it is read in, E.164)
ACCEPTED = [
    pytest.param("13800138000", "CN", "+8613800138000", id="cn-mobile"),
    pytest.param("138 0013 8000", "CN", "+8613800138000", id="cn-mobile-spaced"),
    pytest.param("+86 138-0013-8000", "CN", "+8613800138000", id="cn-mobile-international"),
    pytest.param("008613800138000", "CN", "+8613800138000", id="cn-mobile-idd-prefix"),
    pytest.param("010-12345678", "CN", "+861012345678", id="beijing-landline-dashed"),
    pytest.param("(010) 1234 5678", "CN", "+861012345678", id="beijing-landline-parenthesised"),
    pytest.param("02012345678", "CN", "+862012345678", id="guangzhou-landline"),
    pytest.param("4001234567", "CN", "+864001234567", id="400-number"),
    pytest.param("400-123-4567", "CN", "+864001234567", id="400-number-dashed"),
    pytest.param("8008208820", "CN", "+868008208820", id="800-number"),
    pytest.param("800-820-8820", "CN", "+868008208820", id="800-number-dashed"),
    pytest.param("95588", "CN", "+8695588", id="95-service-number"),
    pytest.param("95555", "CN", "+8695555", id="95-service-number-2"),
    pytest.param("96110", "CN", "+8696110", id="96-service-number"),
    pytest.param("+86 95588", "CN", "+8695588", id="95-service-number-international"),
    pytest.param("+1 202-555-0143", "CN", "+12025550143", id="us-international"),
    pytest.param("+44 20 7946 0958", "CN", "+442079460958", id="uk-international"),
    pytest.param("2025550143", "US", "+12025550143", id="us-national-with-region"),
    pytest.param("(202) 555-0143", "US", "+12025550143", id="us-national-formatted"),
    pytest.param("2025550143", "us", "+12025550143", id="region-lowercase"),
    pytest.param("  13800138000  ", "CN", "+8613800138000", id="surrounding-spaces"),
]

# read in CN
GARBAGE = [
    pytest.param("abc", id="letters"),
    pytest.param("call me maybe", id="words"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("12", id="too-short"),
    pytest.param("1234", id="too-short-4"),
    pytest.param("1380013800", id="mobile-missing-a-digit"),
    pytest.param("1380013800012345", id="too-long"),
    pytest.param("1" * 41, id="longer-than-any-input"),
    pytest.param("110", id="emergency-110"),
    pytest.param("120", id="emergency-120"),
    pytest.param("+86 110", id="emergency-110-international"),
    pytest.param("+999 1234567", id="unknown-country-code"),
    pytest.param("+86 138 0013 8000 ext. 12", id="extension-ext"),
    pytest.param("13800138000x12", id="extension-x"),
    pytest.param("+8613800138000;ext=5", id="extension-rfc3966"),
    pytest.param("12345678901", id="no-such-range"),
    pytest.param("99999", id="invalid-short-number"),
    pytest.param("+", id="plus-only"),
    pytest.param("+86", id="country-code-only"),
    pytest.param("--", id="punctuation-only"),
    pytest.param("1.5", id="float-as-string"),
    pytest.param("1e10", id="exponent-as-string"),
    pytest.param("13800138000#", id="trailing-hash"),
    pytest.param("+86 13800138000 +1 2025550143", id="two-numbers"),
]

# Every non-number, empty and over-long ones included, gets invalid_number: one
# client-facing code for "not a number" is the contract.
GARBAGE_VIA_HTTP = GARBAGE

# A phone never shows these; a NUL or escape in a number is an attack or a bug upstream.
CONTROL = [
    pytest.param("138\x0000138000", id="nul-inside"),
    pytest.param("\x1b[31m13800138000", id="ansi-escape"),
    pytest.param("138\n00138000", id="newline-inside"),
    pytest.param("13800138000\x00", id="nul-trailing"),
    pytest.param("\x0013800138000", id="nul-leading"),
    pytest.param("13800138000\x7f", id="del-trailing"),
    pytest.param("13800138000\u2028", id="line-separator-trailing"),
    pytest.param("13800138000\ud800", id="lone-surrogate-trailing"),
]

NOT_STRINGS = [
    pytest.param(13800138000, id="int"),
    pytest.param(1.5, id="float"),
    pytest.param(13800138000.0, id="float-integral"),
    pytest.param(None, id="null"),
    pytest.param(True, id="bool"),
    pytest.param(["13800138000"], id="list"),
    pytest.param({"number": "13800138000"}, id="object"),
]


# --- normalize() ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw, region, e164", ACCEPTED)
def test_normalize_accepts_what_a_phone_shows(raw, region, e164):
    assert numbers.normalize(raw, region) == e164


def test_national_number_is_read_in_the_given_region():
    assert numbers.normalize("2025550143", "US") == "+12025550143"
    assert numbers.normalize("2025550143", "CN") == "+862025550143"  # a Guangzhou landline


def test_normalize_is_stable_on_its_own_output():
    for raw, region in [("13800138000", "CN"), ("95588", "CN"), ("+1 202-555-0143", "CN")]:
        e164 = numbers.normalize(raw, region)
        assert numbers.normalize(e164, "US") == e164


@pytest.mark.parametrize("raw", GARBAGE)
def test_normalize_refuses_garbage(raw):
    with pytest.raises(InvalidNumber) as info:
        numbers.normalize(raw, "CN")
    assert info.value.code == "invalid_number"
    assert info.value.details.get("reason")


@pytest.mark.parametrize("raw", CONTROL)
def test_normalize_refuses_control_characters(raw):
    with pytest.raises(InvalidNumber):
        numbers.normalize(raw, "CN")


@pytest.mark.parametrize("raw", NOT_STRINGS)
def test_normalize_refuses_values_that_are_not_strings(raw):
    with pytest.raises(InvalidNumber):
        numbers.normalize(raw, "CN")


def test_normalize_refuses_an_unknown_region():
    with pytest.raises(InvalidNumber):
        numbers.normalize("2025550143", "XX")


@pytest.mark.parametrize("raw, reason", [
    ("110", "emergency number"),
    ("+86 138 0013 8000 ext. 12", "extension"),
    ("", "empty"),
    ("abc", "not a phone number"),
])
def test_refusal_says_why(raw, reason):
    with pytest.raises(InvalidNumber) as info:
        numbers.normalize(raw, "CN")
    assert info.value.details["reason"] == reason


# --- through POST /v1/reports ----------------------------------------------------------------

@pytest.mark.parametrize("raw, region, e164", ACCEPTED)
def test_report_accepts_every_format_and_answers_e164(client, device, raw, region, e164):
    body = {"number": raw, "tag": "loan"}
    if region != "CN":
        body["region"] = region
    response = client.post("/v1/reports", json=body, headers=device)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json() == {"number": e164, "tag": "loan", "duplicate": False}
    reputation = client.get(f"/v1/numbers/{e164}", headers=device).get_json()
    assert reputation["number"] == e164
    assert reputation["reporters"] == 1


def test_formats_of_one_number_are_one_number(client, new_device):
    for raw in ("13800138000", "+86 138-0013-8000", "008613800138000"):
        assert client.post("/v1/reports", json={"number": raw, "tag": "loan"}, headers=new_device()).status_code == 201
    body = client.get("/v1/numbers/138 0013 8000", headers=new_device()).get_json()
    assert body["number"] == "+8613800138000"
    assert body["reporters"] == 3


def test_region_override_applies_to_one_report_only(client, device):
    us = client.post("/v1/reports", json={"number": "2025550143", "tag": "loan", "region": "US"}, headers=device)
    cn = client.post("/v1/reports", json={"number": "2025550143", "tag": "loan"}, headers=device)
    assert us.get_json()["number"] == "+12025550143"
    assert cn.get_json()["number"] == "+862025550143"


@pytest.mark.parametrize("raw", GARBAGE_VIA_HTTP)
def test_report_with_garbage_number_is_refused_and_writes_nothing(client, device, redis_client, raw):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": raw, "tag": "loan"}, headers=device)
    assert_error(response, 400, "invalid_number")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("raw", CONTROL)
def test_report_with_control_characters_in_number_is_refused(client, device, redis_client, raw):
    before = redis_state(redis_client)
    data = json.dumps({"number": raw, "tag": "loan"})  # \u escapes: a lone surrogate survives the trip
    response = client.post("/v1/reports", data=data, content_type="application/json", headers=device)
    assert_error(response, 400, "invalid_number", "validation_error")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("raw", NOT_STRINGS)
def test_report_with_number_that_is_not_a_string_is_refused(client, device, redis_client, raw):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": raw, "tag": "loan"}, headers=device)
    error = assert_error(response, 400, "validation_error", "invalid_number")
    if error["code"] == "validation_error":
        assert "number" in error["details"]["fields"]
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("region", ["XX", "usa", "", "C", 1])
def test_report_with_unknown_region_is_refused(client, device, redis_client, region):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": "2025550143", "tag": "loan", "region": region},
                           headers=device)
    error = assert_error(response, 400, "validation_error", "invalid_number")
    if error["code"] == "validation_error":
        assert "region" in error["details"]["fields"]
    assert redis_state(redis_client) == before


def test_missing_number_is_a_validation_error(client, device):
    error = assert_error(client.post("/v1/reports", json={"tag": "loan"}, headers=device), 400, "validation_error")
    assert "number" in error["details"]["fields"]


@pytest.mark.parametrize("raw", ["abc", "110", "12", "+999 1234567"])
def test_lookup_of_garbage_number_is_refused(client, device, raw):
    assert_error(client.get(f"/v1/numbers/{raw}", headers=device), 400, "invalid_number")


def test_lookup_reads_national_number_in_query_region(client, device):
    body = client.get("/v1/numbers/2025550143?region=US", headers=device).get_json()
    assert body["number"] == "+12025550143"
    body = client.get("/v1/numbers/2025550143", headers=device).get_json()
    assert body["number"] == "+862025550143"


@pytest.mark.parametrize("raw", ["", "1" * 41, "1" * 1000])
def test_report_with_empty_or_overlong_number_is_refused_and_writes_nothing(client, device, redis_client, raw):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": raw, "tag": "loan"}, headers=device)
    assert_error(response, 400, "invalid_number", "validation_error")
    assert redis_state(redis_client) == before
