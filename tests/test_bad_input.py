"""Hostile or sloppy input: every one is a 4xx in the one error shape and changes nothing."""
from __future__ import annotations

import json

import pytest

from blocklist import publish
from blocklist.web import create_app
from tests.support import assert_error, redis_state

NUMBER = "13800138000"
DEEP = "[" * 5000 + "]" * 5000  # about 10 KB; Python's JSON parser gives up long before
METRICS_TOKEN = "m" * 40


@pytest.fixture
def admin(store, client) -> dict[str, str]:
    from blocklist import apikeys

    headers = {"Authorization": f"Bearer {apikeys.create(store, 'operator', 'admin')}"}
    client.get("/v1/admin/held", headers=headers)  # notes the key's first use, so a later one writes nothing new
    return headers


@pytest.fixture
def published(store, signer) -> None:
    publish.publish(store, signer)


# --- versions of the lists ----------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "snapshot?version=%C2%B2",  # superscript two: str.isdigit() says yes, int() says no
    "snapshot?version=%D9%A1%D9%A2%D9%A3",  # Arabic-Indic 123
    "delta?from=%C2%B2",
    "delta?from=%D9%A1%D9%A2%D9%A3",
    "delta?from=1&to=%C2%B2",
    "delta?from=%EF%BC%91",  # fullwidth 1
    "delta?from=1000000000000000000",  # past the documented maximum
    pytest.param("delta?from=" + "9" * 5000, id="5000-digits"),  # past int()'s digit limit
    "snapshot?version=+1",
    "delta?from=%201",
    "delta?from=1_0",
])
def test_a_version_other_than_ascii_digits_in_range_is_400_invalid_version(client, published, query):
    assert_error(client.get(f"/v1/lists/spam/{query}"), 400, "invalid_version")


def test_the_largest_documented_version_is_accepted_as_a_version(client, published):
    assert_error(client.get("/v1/lists/spam/delta?from=999999999999999999"), 410, "delta_unavailable")


# --- JSON bodies ----------------------------------------------------------------------------------

JSON_ROUTES = [
    pytest.param("post", "/v1/reports", "device", id="report"),
    pytest.param("post", "/v1/reports/batch", "device", id="batch"),
    pytest.param("post", "/v1/calls", "device", id="calls"),
    pytest.param("post", "/v1/disputes", "device", id="dispute"),
    pytest.param("put", f"/v1/admin/numbers/{NUMBER}/override", "admin", id="override"),
    pytest.param("delete", f"/v1/admin/numbers/{NUMBER}/override", "admin", id="clear-override"),
    pytest.param("post", f"/v1/admin/numbers/{NUMBER}/release", "admin", id="release"),
    pytest.param("post", "/v1/admin/disputes/d1/resolve", "admin", id="resolve"),
    pytest.param("post", "/v1/dnc/verifications", "device", id="dnc-verification"),
    pytest.param("post", "/v1/dnc/registrations", "device", id="dnc-registration"),
    pytest.param("put", f"/v1/dnc/registrations/{NUMBER}", "device", id="dnc-preferences"),
    pytest.param("post", "/v1/dnc/consents", "device", id="dnc-consent"),
    pytest.param("post", "/v1/dnc/scrub", "admin", id="dnc-scrub"),
    pytest.param("post", "/v1/complaints", "device", id="complaint"),
    pytest.param("post", "/v1/regulator/cases/0-0123456789abcdef/transition", "admin", id="case-transition"),
]


@pytest.mark.parametrize("method, path, who", JSON_ROUTES)
def test_a_body_nested_thousands_deep_is_400(client, redis_client, device, admin, method, path, who):
    headers = device if who == "device" else admin
    before = redis_state(redis_client)
    response = getattr(client, method)(path, data=DEEP, content_type="application/json", headers=headers)
    assert_error(response, 400, "validation_error")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("method, path, who", JSON_ROUTES)
def test_a_deep_value_inside_an_object_is_400(client, redis_client, device, admin, method, path, who):
    headers = device if who == "device" else admin
    before = redis_state(redis_client)
    response = getattr(client, method)(path, data='{"reason": ' + DEEP + "}", content_type="application/json",
                                       headers=headers)
    assert_error(response, 400, "validation_error")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
@pytest.mark.parametrize("method, path, who", JSON_ROUTES)
def test_a_json_body_without_the_json_content_type_is_415(client, redis_client, device, admin, method, path, who,
                                                           content_type):
    headers = device if who == "device" else admin
    body = json.dumps({"number": NUMBER, "tag": "loan", "reason": "because", "verdict": "block", "note": "n",
                       "contact": "me@example.org"})
    before = redis_state(redis_client)
    response = getattr(client, method)(path, data=body, headers={**headers, **(
        {"Content-Type": content_type} if content_type else {})})
    assert_error(response, 415, "unsupported_media_type")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8"])
def test_a_report_with_the_json_content_type_and_any_charset_spelling_is_accepted(client, device, content_type):
    response = client.post("/v1/reports", data=json.dumps({"number": NUMBER, "tag": "loan"}),
                           headers={**device, "Content-Type": content_type})
    assert response.status_code == 201, response.get_data(as_text=True)


def test_clearing_an_override_still_needs_no_body(client, admin):
    response = client.delete(f"/v1/admin/numbers/{NUMBER}/override", headers=admin)
    assert response.status_code == 200, response.get_data(as_text=True)


# --- routes ---------------------------------------------------------------------------------------

def test_options_on_the_batch_route_offers_only_post(client):
    allowed = {m.strip() for m in client.options("/v1/reports/batch").headers["Allow"].split(",")}
    assert allowed == {"POST", "OPTIONS"}


def test_delete_on_the_batch_route_is_405_not_a_number(client, device, redis_client):
    before = redis_state(redis_client)
    response = client.delete("/v1/reports/batch", headers=device)
    assert_error(response, 405, "method_not_allowed")
    assert "DELETE" not in response.headers["Allow"]
    assert redis_state(redis_client) == before


def test_a_number_named_like_a_word_is_still_a_number_to_withdraw(client, device):
    assert_error(client.delete("/v1/reports/batches", headers=device), 400, "invalid_number")
    assert client.delete(f"/v1/reports/{NUMBER}", headers=device).status_code == 200


# --- identifiers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("report_id", ["r-1\n", "r-1\r\n", "\nr-1"])
def test_a_report_id_with_a_newline_is_refused(client, device, redis_client, report_id):
    before = redis_state(redis_client)
    response = client.post("/v1/reports", json={"number": NUMBER, "tag": "loan", "report_id": report_id},
                           headers=device)
    assert_error(response, 400, "validation_error")
    assert redis_state(redis_client) == before


def test_a_request_id_with_a_trailing_newline_is_replaced(client):
    # Past the test client's own header checks, as a lenient proxy might hand it on.
    given = client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": "lb-1\n"}).headers["X-Request-Id"]
    assert given != "lb-1\n" and len(given) == 32


# --- headers on every answer ----------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [("get", "/healthz"), ("get", "/v1/tags"), ("get", "/v1/nothing"),
                                          ("post", "/v1/reports"), ("get", "/v1/lists"), ("get", "/openapi.json"),
                                          ("get", "/metrics"), ("get", "/v1/lists/spam/manifest"),
                                          ("delete", "/v1/tags")])
def test_every_answer_says_nosniff(client, method, path):
    response = getattr(client, method)(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- /metrics -------------------------------------------------------------------------------------

@pytest.fixture
def guarded(config):
    config.metrics_token = METRICS_TOKEN
    return create_app(config).test_client()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {METRICS_TOKEN}x",
                                           f"Basic {METRICS_TOKEN}", "Bearer "])
def test_metrics_with_a_token_set_refuse_a_scrape_without_it(guarded, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = guarded.get("/metrics", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert "callmark_" not in response.get_data(as_text=True)


def test_metrics_with_a_token_set_answer_a_scrape_with_it(guarded):
    response = guarded.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200 and "callmark_http_requests_total" in response.get_data(as_text=True)


def test_metrics_without_a_token_set_stay_open(client):
    assert client.get("/metrics").status_code == 200


def test_the_metrics_token_comes_from_the_environment():
    from blocklist.config import Config

    assert Config.from_env({"CALLMARK_METRICS_TOKEN": METRICS_TOKEN}).metrics_token == METRICS_TOKEN
    assert Config.from_env({}).metrics_token is None


@pytest.mark.parametrize("path", ["/v1/feed?limit=0", "/v1/stats?nonsense=1"])
def test_a_bad_query_says_it_is_the_query_not_the_body(client, store, path):
    from blocklist import apikeys

    admin = {"Authorization": f"Bearer {apikeys.create(store, 'ops', 'admin')}"}
    error = client.get(path, headers=admin).get_json()["error"]
    assert error["code"] == "validation_error" and error["message"] == "the query is not valid"
