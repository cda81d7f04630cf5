"""The OpenAPI document against the live app: schemathesis generates requests for every
operation; no answer may be a 5xx, and every answer must match what the document says
(status code, content type, body schema — errors included, in the one error shape)."""
from __future__ import annotations

import re

import phonenumbers
import pytest
import schemathesis
from flask import Blueprint
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from blocklist import apikeys, numbers
from blocklist.web.openapi import RULE_VARIABLE
from blocklist.web.routes import REGISTRY, Doc, route
from blocklist.web.schemas import PLAIN_TEXT
from blocklist.lookup import PREFIX_PATTERN

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


@pytest.fixture
def credentials(app, store, client, device):
    from blocklist import publish

    signer, _ = app.extensions["callmark.signing"]
    publish.publish(store, signer)  # lists exist, so the sync routes answer 200 too
    return {
        "device": device,
        "feed_key": {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"},
        "admin_key": {"Authorization": f"Bearer {apikeys.create(store, 'operator', 'admin')}"},
        "scrub_key": {"Authorization": f"Bearer {apikeys.create(store, 'telemarketer', 'scrub')}"},
        "regulator_key": {"Authorization": f"Bearer {apikeys.create(store, 'pboc', 'regulator', 'finance')}"},
    }


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


# What a request the document calls valid can still be refused for: what no JSON Schema says.
NOT_IN_THE_DOCUMENT = {
    "invalid_number",  # which strings are phone numbers is phonenumbers' call
    "verification_failed",  # only the server knows its verification ids and the codes it sent
}
BEYOND_A_SCHEMA = {
    "GET /v1/feed",  # a cursor is opaque: only the server's own are valid
    "GET /v1/stats",  # from and to are calendar dates, from <= to, a bounded period apart
    "GET /v1/dnc/stats",  # the same period as GET /v1/stats
    "POST /v1/dnc/scrub",  # category is a required query parameter with a text/csv body only: no document says so
    "POST /v1/complaints",  # call_at at most 5 minutes ahead of the clock; contact only beside "contact_consent": true
    "GET /v1/regulator/complaints/export",  # from and to are calendar dates, from <= to, at most a year apart
    "GET /v1/regulator/cases",  # the same dates; a cursor is opaque
}


def refuses_only_what_the_document_cannot_say(ctx, response, case) -> None:
    """A schema-valid request is not refused for its shape: its 400 names what no schema can say."""
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return
    if case.operation.label in BEYOND_A_SCHEMA:
        return
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["code"] in NOT_IN_THE_DOCUMENT, f"a schema-valid request was refused: {error}"


@schema.parametrize()
# Derandomized: CI explores the same examples every run, so a red build is always reproducible.
# The coverage phase runs too: every region, the edges of versions, prefixes and lengths.
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_as_documented(case, credentials, new_device):
    security = case.operation.definition.raw.get("security") or [{}]
    headers = credentials.get(next(iter(security[0]), ""), {})
    if case.operation.label == "DELETE /v1/devices/me":  # erasing the shared device would lock the others out
        headers = new_device()
    response = case.call(headers=headers)
    case.validate_response(response, checks=(*CHECKS, refuses_only_what_the_document_cannot_say))


def parameter_schema(spec: dict, path: str, name: str, method: str = "get") -> dict:
    item = spec["paths"][path]
    return next(p["schema"] for p in (*item.get("parameters", ()), *item[method].get("parameters", ()))
                if p["name"] == name)


@pytest.mark.parametrize("path, name", [("/v1/lists/{name}/snapshot", "version"),
                                        ("/v1/lists/{name}/delta", "from"), ("/v1/lists/{name}/delta", "to")])
def test_a_version_is_accepted_exactly_within_its_documented_bounds(client, credentials, path, name):
    bounds = parameter_schema(client.get("/openapi.json").get_json(), path, name)
    url = path.replace("{name}", "spam") + f"?{'from=1&' if name == 'to' else ''}{name}="
    for value, accepted in ((bounds["minimum"], True), (bounds["maximum"], True),
                            (bounds["minimum"] - 1, False), (bounds["maximum"] + 1, False)):
        status = client.get(f"{url}{value}").status_code  # 404, 410 and 304 are answers about a valid version
        assert (status != 400) == accepted, (value, status)


def test_the_document_lists_every_region_the_server_takes(client):
    spec = client.get("/openapi.json").get_json()
    documented = set(spec["components"]["schemas"]["Report"]["properties"]["region"]["enum"])
    assert documented == set(phonenumbers.SUPPORTED_REGIONS) | {r.lower() for r in phonenumbers.SUPPORTED_REGIONS}
    assert set(parameter_schema(spec, "/v1/numbers/{number}", "region")["enum"]) == documented


def test_the_documented_prefix_pattern_is_the_one_the_server_checks(client):
    pattern = parameter_schema(client.get("/openapi.json").get_json(), "/v1/lookup/prefix/{prefix}", "prefix")["pattern"]
    assert pattern == f"^{PREFIX_PATTERN.pattern}$"


def test_the_free_text_pattern_refuses_exactly_the_control_characters():
    for point in range(0x10000):  # both sets lie in the BMP
        char = chr(point)
        if 0xD800 <= point <= 0xDFFF:  # lone surrogates: no text a pattern can see, refused apart
            continue
        assert bool(re.fullmatch(PLAIN_TEXT, char)) != bool(numbers.CONTROL.search(char)), hex(point)


def test_a_batch_may_hold_null_items_and_the_document_says_so(client, device):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["schemas"]["Batch"]["properties"]["reports"]["items"] == {"nullable": True}
    response = client.post("/v1/reports/batch", json={"reports": [None, {"number": "13800138000", "tag": "loan"}]},
                           headers=device)
    assert response.status_code == 200
    assert [item["status"] for item in response.get_json()["results"]] == [400, 201]


def test_openapi_document_is_served_with_every_route(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/reports", "/v1/reports/batch", "/v1/numbers/{number}", "/v1/feed", "/v1/feed/export",
                 "/v1/lists/{name}/delta", "/v1/keys/signing", "/v1/admin/disputes", "/v1/lookup/prefix/{prefix}"):
        assert path in spec["paths"]


def test_docs_page_lists_the_operations(client):
    page = client.get("/docs").data.decode()
    assert "POST" in page and "/v1/reports/batch" in page and "/openapi.json" in page


UNDOCUMENTED = {"/openapi.json", "/docs", "/reports/<month>"}  # the document, its page, the report page


def test_every_route_is_declared_once_and_in_the_document(app):
    spec = app.extensions["callmark.openapi"]
    served = [rule for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("admin.")]  # the HTML pages
    assert len({rule.endpoint for rule in served}) == len(served), "an endpoint serves two rules"
    documented, undocumented = set(), set()
    for rule in served:
        assert rule.endpoint in REGISTRY, f"{rule.rule} is served without a declaration (blocklist/web/routes.py)"
        declared = REGISTRY[rule.endpoint]
        assert (rule.rule, rule.methods - {"HEAD", "OPTIONS"}) == (declared.path, {declared.method})
        if declared.doc is None:
            undocumented.add(rule.rule)
            continue
        path = RULE_VARIABLE.sub(r"{\1}", rule.rule)
        assert declared.method.lower() in spec["paths"].get(path, {}), f"{declared.method} {path} is not documented"
        documented.add((path, declared.method.lower()))
    assert undocumented == UNDOCUMENTED
    in_the_document = {(path, method) for path, item in spec["paths"].items() for method in item
                       if method != "parameters"}
    assert in_the_document == documented


def test_a_route_cannot_be_declared_twice():
    assert "api.post_report" in REGISTRY  # declared by blocklist.web.api, whichever module was imported first
    bp = Blueprint("api", __name__)
    view = lambda: ""  # noqa: E731
    view.__name__ = "post_report"
    with pytest.raises(ValueError, match="declared twice"):
        route(bp, "GET", "/elsewhere", doc=Doc("another", 200))(view)
