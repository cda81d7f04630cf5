"""Reports: one vote per device per number, validated bodies, the one error shape, nothing half-written."""
from __future__ import annotations

import json

import pytest
from tests.support import assert_error, redis_state

NUMBER = "13800138000"
E164 = "+8613800138000"
KIB = 1024
MIB = 1024 * KIB


def assert_item_error(item: dict, index: int, *codes: str) -> dict:
    assert item["index"] == index
    assert item["status"] == 400
    assert set(item["error"]) == {"code", "message", "details"}
    assert item["error"]["code"] in codes
    assert item["error"]["message"]
    assert isinstance(item["error"]["details"], dict)
    return item["error"]


def number_keys(r) -> set[str]:
    return set(r.scan_iter(match="cm:n:*", count=1000))


def report(client, headers, number=NUMBER, tag="loan", **extra):
    return client.post("/v1/reports", json={"number": number, "tag": tag, **extra}, headers=headers)


def reputation(client, headers, number=E164) -> dict:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


# --- one vote per device ------------------------------------------------------------------------

def test_first_report_is_not_a_duplicate(client, device):
    response = report(client, device)
    assert response.status_code == 201
    assert response.get_json() == {"number": E164, "tag": "loan", "duplicate": False}


def test_same_device_same_tag_counts_once(client, device):
    report(client, device)
    before = reputation(client, device)
    response = report(client, device)
    assert response.status_code == 201
    assert response.get_json()["duplicate"] is True
    after = reputation(client, device)
    assert after["reporters"] == 1
    assert after["tags"] == {"loan": {"reporters": 1, "score": 1.0}}
    assert after == before


def test_duplicate_later_changes_nothing_not_even_last_seen(client, device, clock, redis_client):
    report(client, device)
    clock.advance(days=3)
    state = redis_state(redis_client)
    before = reputation(client, device)
    assert report(client, device).get_json()["duplicate"] is True
    assert reputation(client, device) == before
    assert redis_state(redis_client) == state


def test_distinct_devices_each_count(client, new_device):
    for _ in range(2):
        assert report(client, new_device()).get_json()["duplicate"] is False
    assert reputation(client, new_device())["reporters"] == 2


# --- report_id idempotency ----------------------------------------------------------------------

def test_retry_with_same_report_id_is_a_noop(client, device, redis_client):
    first = report(client, device, report_id="r-1")
    assert first.get_json()["duplicate"] is False
    state = redis_state(redis_client)
    retry = report(client, device, report_id="r-1")
    assert retry.status_code == 201
    assert retry.get_json()["duplicate"] is True
    assert redis_state(redis_client) == state


def test_retry_with_same_report_id_and_other_tag_is_a_noop(client, device, redis_client):
    report(client, device, tag="loan", report_id="r-1")
    state = redis_state(redis_client)
    retry = report(client, device, tag="fraud", report_id="r-1")
    assert retry.status_code == 201
    assert retry.get_json()["duplicate"] is True
    body = reputation(client, device)
    assert body["label"] == "loan"
    assert set(body["tags"]) == {"loan"}
    assert redis_state(redis_client) == state


def test_retry_of_a_report_id_first_answered_as_duplicate_is_a_noop(client, device, redis_client):
    report(client, device, tag="loan", report_id="r-1")
    assert report(client, device, tag="loan", report_id="r-2").get_json()["duplicate"] is True
    state = redis_state(redis_client)
    retry = report(client, device, tag="fraud", report_id="r-2")
    assert retry.get_json()["duplicate"] is True
    assert reputation(client, device)["label"] == "loan"
    assert redis_state(redis_client) == state


def test_late_retry_of_an_old_report_id_does_not_undo_a_retag(client, device):
    report(client, device, tag="loan", report_id="r-1")
    assert report(client, device, tag="fraud", report_id="r-2").get_json()["duplicate"] is False
    assert report(client, device, tag="loan", report_id="r-1").get_json()["duplicate"] is True
    body = reputation(client, device)
    assert body["label"] == "fraud"
    assert body["tags"] == {"fraud": {"reporters": 1, "score": 1.0}}


def test_same_report_id_from_another_device_is_a_new_report(client, new_device):
    a, b = new_device(), new_device()
    report(client, a, report_id="same")
    assert report(client, b, report_id="same").get_json()["duplicate"] is False
    assert reputation(client, a)["reporters"] == 2


def test_same_report_id_on_another_number_is_a_new_report(client, device):
    report(client, device, report_id="same")
    response = report(client, device, number="13900139000", report_id="same")
    assert response.get_json()["duplicate"] is False
    assert reputation(client, device, "+8613900139000")["reporters"] == 1


@pytest.mark.parametrize("report_id", ["", "has space", "x" * 65, "semi;colon", "ключ", 12])
def test_malformed_report_id_is_refused(client, device, redis_client, report_id):
    before = redis_state(redis_client)
    error = assert_error(report(client, device, report_id=report_id), 400, "validation_error")
    assert "report_id" in error["details"]["fields"]
    assert redis_state(redis_client) == before


# --- re-tagging and withdrawing -----------------------------------------------------------------

def test_new_tag_replaces_the_old_one(client, device):
    report(client, device, tag="loan")
    response = report(client, device, tag="fraud")
    assert response.status_code == 201
    assert response.get_json() == {"number": E164, "tag": "fraud", "duplicate": False}
    body = reputation(client, device)
    assert body["reporters"] == 1
    assert body["label"] == "fraud"
    assert body["tags"] == {"fraud": {"reporters": 1, "score": 1.0}}
    assert body["score"] == 1.0


def test_retag_moves_per_tag_counts(client, new_device):
    a, b = new_device(), new_device()
    report(client, a, tag="real_estate")
    report(client, b, tag="real_estate")
    report(client, a, tag="insurance")
    body = reputation(client, a)
    assert body["reporters"] == 2
    assert body["tags"] == {"real_estate": {"reporters": 1, "score": 1.0},
                            "insurance": {"reporters": 1, "score": 1.0}}


def test_retag_back_to_first_tag_is_not_a_duplicate(client, device):
    report(client, device, tag="loan")
    report(client, device, tag="fraud")
    assert report(client, device, tag="loan").get_json()["duplicate"] is False
    assert reputation(client, device)["tags"] == {"loan": {"reporters": 1, "score": 1.0}}


def test_withdraw_removes_the_devices_vote(client, device, redis_client):
    report(client, device)
    response = client.delete(f"/v1/reports/{NUMBER}", headers=device)
    assert response.status_code == 200
    assert response.get_json() == {"number": E164, "withdrawn": True}
    body = reputation(client, device)
    assert body["verdict"] == "unknown"
    assert body["reporters"] == 0
    assert body["tags"] == {}
    assert number_keys(redis_client) == set()


def test_withdraw_leaves_other_devices_votes(client, new_device):
    a, b = new_device(), new_device()
    report(client, a, tag="loan")
    report(client, b, tag="fraud")
    assert client.delete(f"/v1/reports/{E164}", headers=a).get_json()["withdrawn"] is True
    body = reputation(client, a)
    assert body["reporters"] == 1
    assert body["tags"] == {"fraud": {"reporters": 1, "score": 1.0}}


def test_withdraw_without_a_vote_changes_nothing(client, new_device, redis_client):
    a, b = new_device(), new_device()
    report(client, a)
    state = redis_state(redis_client)
    response = client.delete(f"/v1/reports/{NUMBER}", headers=b)
    assert response.status_code == 200
    assert response.get_json() == {"number": E164, "withdrawn": False}
    assert redis_state(redis_client) == state


def test_withdraw_on_a_never_reported_number_writes_nothing(client, device, redis_client):
    state = redis_state(redis_client)
    response = client.delete("/v1/reports/13900139000", headers=device)
    assert response.status_code == 200
    assert response.get_json() == {"number": "+8613900139000", "withdrawn": False}
    assert redis_state(redis_client) == state


def test_withdraw_twice_second_is_not_withdrawn(client, device):
    report(client, device)
    assert client.delete(f"/v1/reports/{NUMBER}", headers=device).get_json()["withdrawn"] is True
    assert client.delete(f"/v1/reports/{NUMBER}", headers=device).get_json()["withdrawn"] is False


def test_report_after_withdraw_counts_again(client, device):
    report(client, device)
    client.delete(f"/v1/reports/{NUMBER}", headers=device)
    assert report(client, device).get_json()["duplicate"] is False
    assert reputation(client, device)["reporters"] == 1


def test_withdraw_with_garbage_number_is_refused(client, device, redis_client):
    before = redis_state(redis_client)
    assert_error(client.delete("/v1/reports/abc", headers=device), 400, "invalid_number")
    assert redis_state(redis_client) == before


def test_withdraw_reads_number_in_query_region(client, device):
    report(client, device, number="2025550143", region="US")
    response = client.delete("/v1/reports/2025550143?region=US", headers=device)
    assert response.get_json() == {"number": "+12025550143", "withdrawn": True}


# --- batch --------------------------------------------------------------------------------------

def test_batch_keeps_valid_items_and_reports_each_failure(client, device, redis_client):
    items = [
        {"number": "13800138000", "tag": "loan"},
        {"number": "abc", "tag": "loan"},
        {"number": "13900139000", "tag": "no_such_tag"},
        {"number": "+1 202-555-0143", "tag": "fraud"},
        {"number": "13700137000", "tag": "loan", "colour": "red"},
        "not an object",
        {"number": "13600136000", "tag": "loan", "company": "x" * 101},
    ]
    response = client.post("/v1/reports/batch", json={"reports": items}, headers=device)
    assert response.status_code == 200
    body = response.get_json()
    assert body["accepted"] == 2
    assert body["rejected"] == 5
    results = body["results"]
    assert len(results) == len(items)
    assert [r["index"] for r in results] == list(range(len(items)))
    assert results[0] == {"index": 0, "status": 201, "number": E164, "tag": "loan", "duplicate": False}
    assert results[3] == {"index": 3, "status": 201, "number": "+12025550143", "tag": "fraud", "duplicate": False}
    assert_item_error(results[1], 1, "invalid_number")
    assert "tag" in assert_item_error(results[2], 2, "validation_error")["details"]["fields"]
    assert "colour" in assert_item_error(results[4], 4, "validation_error")["details"]["fields"]
    assert_item_error(results[5], 5, "validation_error")
    assert "company" in assert_item_error(results[6], 6, "validation_error")["details"]["fields"]
    # Only the two valid numbers exist.
    assert {key.rsplit(":", 1)[1] for key in number_keys(redis_client)} == {E164, "+12025550143"}
    assert reputation(client, device)["reporters"] == 1


def test_batch_of_only_invalid_items_writes_nothing(client, device, redis_client):
    before = redis_state(redis_client)
    response = client.post("/v1/reports/batch", json={"reports": [{"number": "abc", "tag": "loan"},
                                                                  {"number": NUMBER, "tag": "bogus"}]},
                           headers=device)
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 0
    assert redis_state(redis_client) == before


def test_batch_applies_one_vote_per_device_within_the_batch(client, device):
    items = [{"number": NUMBER, "tag": "loan"}, {"number": "+86 138 0013 8000", "tag": "loan"},
             {"number": NUMBER, "tag": "fraud"}]
    results = client.post("/v1/reports/batch", json={"reports": items}, headers=device).get_json()["results"]
    assert [r["duplicate"] for r in results] == [False, True, False]
    body = reputation(client, device)
    assert body["reporters"] == 1
    assert body["tags"] == {"fraud": {"reporters": 1, "score": 1.0}}


def test_batch_of_500_is_accepted(client, device, redis_client):
    items = [{"number": f"1380000{i:04d}", "tag": "loan"} for i in range(500)]
    response = client.post("/v1/reports/batch", json={"reports": items}, headers=device)
    assert response.status_code == 200
    body = response.get_json()
    assert body["accepted"] == 500 and body["rejected"] == 0
    assert len(number_keys(redis_client)) == 500


def test_batch_of_501_is_refused_and_writes_nothing(client, device, redis_client):
    before = redis_state(redis_client)
    items = [{"number": f"1380000{i:04d}", "tag": "loan"} for i in range(501)]
    error = assert_error(client.post("/v1/reports/batch", json={"reports": items}, headers=device),
                         400, "validation_error")
    assert "reports" in error["details"]["fields"]
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("body", [
    {"reports": []},
    {"reports": "13800138000"},
    {"reports": {"number": NUMBER, "tag": "loan"}},
    {},
    {"reports": [{"number": NUMBER, "tag": "loan"}], "extra": 1},
    [{"number": NUMBER, "tag": "loan"}],
])
def test_malformed_batch_is_refused_and_writes_nothing(client, device, redis_client, body):
    before = redis_state(redis_client)
    assert_error(client.post("/v1/reports/batch", json=body, headers=device), 400, "validation_error")
    assert redis_state(redis_client) == before


# --- fields -------------------------------------------------------------------------------------

def test_company_note_and_call_are_accepted_within_limits(client, device):
    response = report(client, device, company="某某房产" * 25, note="说" * 500,
                      call={"ring_seconds": 3.5, "answered": True, "duration_seconds": 0})
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize("field, value", [
    ("company", "x" * 101),
    ("note", "x" * 501),
    ("company", "ACME\x00Ltd"),
    ("company", "ACME\nLtd"),
    ("note", "line one\r\nline two"),
    ("note", "bell\x07"),
    ("note", "escape \x1b[31m red"),
    ("note", "delete\x7f"),
    ("note", "c1 control \x85"),
    ("note", "line\u2028separator"),
    ("company", 42),
    ("note", ["a"]),
])
def test_bad_company_or_note_is_refused_and_writes_nothing(client, device, redis_client, field, value):
    before = redis_state(redis_client)
    error = assert_error(report(client, device, **{field: value}), 400, "validation_error")
    assert field in error["details"]["fields"]
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("call", [
    {"ring_seconds": -1},
    {"duration_seconds": -0.5},
    {"ring_seconds": 3601},
    {"duration_seconds": 86401},
    {"answered": "yes"},
    {"answered": "true"},
    {"answered": None},
    {"answered": 1},
    {"answered": 0},
    {"ring_seconds": "soon"},
    {"ring_seconds": 3, "colour": "red"},
    "answered",
    [1, 2],
])
def test_bad_call_fields_are_refused_and_write_nothing(client, device, redis_client, call):
    before = redis_state(redis_client)
    error = assert_error(report(client, device, call=call), 400, "validation_error")
    assert "call" in error["details"]["fields"]
    assert redis_state(redis_client) == before


def test_nan_duration_is_refused(client, device, redis_client):
    before = redis_state(redis_client)
    raw = '{"number": "13800138000", "tag": "loan", "call": {"duration_seconds": NaN}}'
    response = client.post("/v1/reports", data=raw, content_type="application/json", headers=device)
    assert_error(response, 400, "validation_error")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("extra", [{"colour": "red"}, {"device_id": "x"}, {"reporters": 100}, {"Tag": "fraud"}])
def test_unknown_fields_are_refused_and_write_nothing(client, device, redis_client, extra):
    before = redis_state(redis_client)
    error = assert_error(report(client, device, **extra), 400, "validation_error")
    assert set(extra) <= set(error["details"]["fields"])
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("tag", ["spam", "LOAN", "", None, 3, "real estate"])
def test_unknown_tag_is_refused(client, device, redis_client, tag):
    before = redis_state(redis_client)
    error = assert_error(report(client, device, tag=tag), 400, "validation_error")
    assert "tag" in error["details"]["fields"]
    assert redis_state(redis_client) == before


def test_missing_tag_is_refused(client, device):
    response = client.post("/v1/reports", json={"number": NUMBER}, headers=device)
    assert "tag" in assert_error(response, 400, "validation_error")["details"]["fields"]


# --- authentication -----------------------------------------------------------------------------

AUTH_FAILURES = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": ""}, id="empty-header"),
    pytest.param({"Authorization": "Bearer"}, id="scheme-only"),
    pytest.param({"Authorization": "Bearer    "}, id="blank-token"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="wrong-scheme"),
    pytest.param({"Authorization": "Token 0123456789abcdef.abc"}, id="other-scheme"),
    pytest.param({"Authorization": "Bearer not-a-token"}, id="malformed"),
    pytest.param({"Authorization": "Bearer 0123.abcdef"}, id="short-device-id"),
    pytest.param({"Authorization": "Bearer 0123456789abcdef." + "a" * 200}, id="too-long"),
    pytest.param({"Authorization": "Bearer 0123456789abcdef." + "a" * 43}, id="unknown-device"),
]


@pytest.mark.parametrize("headers", AUTH_FAILURES)
@pytest.mark.parametrize("method, path, body", [
    ("post", "/v1/reports", {"number": NUMBER, "tag": "loan"}),
    ("post", "/v1/reports/batch", {"reports": [{"number": NUMBER, "tag": "loan"}]}),
    ("delete", f"/v1/reports/{NUMBER}", None),
    ("get", f"/v1/numbers/{NUMBER}", None),
])
def test_requests_without_a_valid_token_get_401_and_write_nothing(client, redis_client, headers, method, path, body):
    before = redis_state(redis_client)
    response = getattr(client, method)(path, json=body, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert redis_state(redis_client) == before


def test_token_with_the_right_device_id_but_wrong_secret_gets_401(client, device, redis_client):
    token = device["Authorization"].split(" ", 1)[1]
    device_id, secret = token.split(".", 1)
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    before = redis_state(redis_client)
    response = report(client, {"Authorization": f"Bearer {device_id}.{forged}"})
    assert_error(response, 401, "unauthorized")
    assert redis_state(redis_client) == before


def test_a_valid_token_is_accepted_with_a_lowercase_scheme(client, device):
    token = device["Authorization"].split(" ", 1)[1]
    assert report(client, {"Authorization": f"bearer {token}"}).status_code == 201


# --- body size and shape ------------------------------------------------------------------------

def padded(body: dict, size: int) -> str:
    """The JSON of `body` padded with insignificant whitespace to exactly `size` bytes."""
    text = json.dumps(body)
    assert len(text) <= size
    return text + " " * (size - len(text))


def test_single_report_just_under_64_kib_is_accepted(client, device):
    response = client.post("/v1/reports", data=padded({"number": NUMBER, "tag": "loan"}, 64 * KIB),
                           content_type="application/json", headers=device)
    assert response.status_code == 201


def test_single_report_over_64_kib_gets_413_and_writes_nothing(client, device, redis_client):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", data=padded({"number": NUMBER, "tag": "loan"}, 64 * KIB + 1),
                           content_type="application/json", headers=device)
    assert_error(response, 413, "body_too_large")
    assert redis_state(redis_client) == before


def test_single_report_with_huge_note_gets_413(client, device, redis_client):
    before = redis_state(redis_client)
    assert_error(report(client, device, note="x" * (70 * KIB)), 413, "body_too_large")
    assert redis_state(redis_client) == before


def test_batch_larger_than_64_kib_and_up_to_1_mib_is_accepted(client, device):
    items = [{"number": f"1380000{i:04d}", "tag": "loan", "note": "n" * 500, "company": "c" * 100}
             for i in range(500)]
    data = padded({"reports": items}, MIB)
    response = client.post("/v1/reports/batch", data=data, content_type="application/json", headers=device)
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 500


def test_batch_over_1_mib_gets_413_and_writes_nothing(client, device, redis_client):
    before = redis_state(redis_client)
    data = padded({"reports": [{"number": NUMBER, "tag": "loan"}]}, MIB + 1)
    response = client.post("/v1/reports/batch", data=data, content_type="application/json", headers=device)
    assert_error(response, 413, "body_too_large")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("raw", [
    '{"number": "13800138000", "tag": "loan"',
    "{number: 13800138000}",
    "",
    "null",
    "[]",
    '"13800138000"',
    b"\xff\xfe\x00garbage",
])
def test_malformed_json_gets_400_with_the_error_shape(client, device, redis_client, raw):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", data=raw, content_type="application/json", headers=device)
    assert_error(response, 400, "validation_error", "malformed_json", "bad_request")
    assert redis_state(redis_client) == before


def test_unknown_path_gets_404_with_the_error_shape(client):
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("method, path", [("get", "/v1/reports"), ("put", "/v1/devices"),
                                          ("delete", "/v1/tags"), ("post", "/healthz")])
def test_wrong_method_gets_405_with_the_error_shape(client, method, path):
    response = getattr(client, method)(path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers.get("Allow")


# --- text that is not valid Unicode ----------------------------------------------------------------


def raw_report(field: str, escaped: str) -> str:
    return '{"number": "13800138000", "tag": "loan", "%s": "%s"}' % (field, escaped)


@pytest.mark.parametrize("field", ["note", "company"])
def test_lone_surrogate_in_free_text_writes_nothing(client, device, redis_client, field):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", data=raw_report(field, "x\\ud800"), content_type="application/json",
                           headers=device)
    assert response.status_code != 201
    assert set(response.get_json()) == {"error"}
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("field", ["note", "company"])
def test_lone_surrogate_in_free_text_is_a_validation_error(client, device, field):
    response = client.post("/v1/reports", data=raw_report(field, "x\\ud800"), content_type="application/json",
                           headers=device)
    assert field in assert_error(response, 400, "validation_error")["details"]["fields"]


def test_lone_surrogate_in_one_batch_item_does_not_sink_the_others(client, device):
    data = ('{"reports": [{"number": "13800138000", "tag": "loan"}, '
            '{"number": "13900139000", "tag": "loan", "note": "x\\ud800"}]}')
    response = client.post("/v1/reports/batch", data=data, content_type="application/json", headers=device)
    assert response.status_code == 200
    body = response.get_json()
    assert body["accepted"] == 1
    assert_item_error(body["results"][1], 1, "validation_error")
    assert reputation(client, device)["reporters"] == 1
