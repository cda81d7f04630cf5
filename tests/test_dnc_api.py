"""Do-Not-Call over HTTP: the register walk-through (the code read from the development SMS
outbox), consents, JSON and CSV scrubs (bad lines, the streamed answer), receipts, the daily
quota, the SMS-pumping limits, and 4xx errors in the one shape that change nothing."""
from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from blocklist import apikeys, sms
from blocklist.web import create_app, dnc_api
from tests.support import assert_error, redis_state
from tests.test_ratelimit import production

NUMBER = "+8613800138000"
OTHER = "+8613900139000"
PREFERENCES = {"refuse": ["loan", "real_estate"],
               "accept_windows": [{"days": ["sat", "sun"], "from": "10:00", "to": "12:00", "categories": ["loan"]}]}
REGISTRATION = {"number", "registered_at", "effective_at", "expires_at", "preferences"}


class Recorder(sms.Sender):
    """An SMS gateway that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))


def outbox(config) -> list[dict]:
    path = os.path.join(config.data_dir, sms.OUTBOX_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def code_sent_to(config, number: str) -> str:
    texts = [message["text"] for message in outbox(config) if message["to"] == number]
    assert texts, f"no text went to {number}"
    return re.search(r"\b[0-9]{6}\b", texts[-1]).group()


def verify(client, device, number: str = NUMBER, **extra):
    return client.post("/v1/dnc/verifications", json={"number": number, **extra}, headers=device)


def registered(client, config, device, number: str = NUMBER, preferences: dict = PREFERENCES) -> dict:
    """Verify `number` for `device` through the development outbox and register it."""
    started = verify(client, device, number)
    assert started.status_code == 202, started.get_data(as_text=True)
    response = client.post("/v1/dnc/registrations", headers=device, json={
        "verification_id": started.get_json()["verification_id"], "code": code_sent_to(config, number),
        "preferences": preferences})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def key(store, client, name: str = "acme", scope: str = "scrub") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {apikeys.create(store, name, scope)}"}
    client.get("/v1/dnc/receipts", headers=headers)  # notes the key's first use: later requests write nothing new
    return headers


@pytest.fixture
def acme(store, client) -> dict[str, str]:
    return key(store, client)


def scrub(client, headers, numbers, category: str = "loan", **extra):
    return client.post("/v1/dnc/scrub", json={"category": category, "numbers": numbers, **extra}, headers=headers)


def scrub_csv(client, headers, body: bytes | str, query: str = "category=loan", **kwargs):
    return client.post(f"/v1/dnc/scrub?{query}", data=body, headers={**headers, "Content-Type": "text/csv"},
                       **kwargs)


def digest(shown: list[str]) -> str:
    return hashlib.sha256("\n".join(shown).encode()).hexdigest()


# --- the phone user -------------------------------------------------------------------------------

def test_a_number_is_verified_through_the_outbox_registered_listed_changed_and_removed(client, config, device):
    started = verify(client, device, "138 0013 8000")
    assert started.status_code == 202
    assert set(started.get_json()) == {"verification_id", "expires_at"}
    assert [message["to"] for message in outbox(config)] == [NUMBER]

    response = client.post("/v1/dnc/registrations", headers=device, json={
        "verification_id": started.get_json()["verification_id"], "code": code_sent_to(config, NUMBER),
        "preferences": PREFERENCES})
    assert response.status_code == 201, response.get_data(as_text=True)
    registration = response.get_json()
    assert set(registration) == REGISTRATION
    assert registration["number"] == NUMBER
    assert registration["preferences"]["refuse"] == ["loan", "real_estate"]

    mine = client.get("/v1/dnc/registrations/me", headers=device).get_json()["registrations"]
    assert [(r["number"], r["expires_at"]) for r in mine] == [(NUMBER, registration["expires_at"])]

    changed = client.put("/v1/dnc/registrations/13800138000", headers=device, json={"preferences": {"refuse": "all"}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["preferences"]["refuse"] == "all"
    assert client.get("/v1/dnc/registrations/me", headers=device).get_json()["registrations"][0][
        "preferences"]["refuse"] == "all"

    removed = client.delete(f"/v1/dnc/registrations/{NUMBER}", headers=device)
    assert removed.get_json() == {"number": NUMBER, "removed": True}
    assert client.get("/v1/dnc/registrations/me", headers=device).get_json() == {"registrations": []}


def test_a_wrong_code_is_400_verification_failed(client, config, device, redis_client):
    started = verify(client, device).get_json()
    wrong = "000000" if code_sent_to(config, NUMBER) != "000000" else "111111"
    response = client.post("/v1/dnc/registrations", headers=device, json={
        "verification_id": started["verification_id"], "code": wrong, "preferences": PREFERENCES})
    assert_error(response, 400, "verification_failed")
    assert client.get("/v1/dnc/registrations/me", headers=device).get_json() == {"registrations": []}


def test_only_the_device_that_registered_a_number_may_change_or_remove_it(client, config, device, new_device,
                                                                         redis_client):
    registered(client, config, device)
    stranger = new_device()
    before = redis_state(redis_client)
    assert_error(client.put(f"/v1/dnc/registrations/{NUMBER}", headers=stranger,
                            json={"preferences": {"refuse": "all"}}), 404, "not_registered")
    assert_error(client.delete(f"/v1/dnc/registrations/{NUMBER}", headers=stranger), 404, "not_registered")
    assert redis_state(redis_client) == before


def test_verifying_a_registered_number_from_a_new_device_moves_it_there(client, config, device, new_device):
    registered(client, config, device)
    replacement = new_device()
    registered(client, config, replacement, preferences={"refuse": "all"})
    assert client.get("/v1/dnc/registrations/me", headers=device).get_json() == {"registrations": []}
    assert [r["number"] for r in client.get("/v1/dnc/registrations/me", headers=replacement).get_json()[
        "registrations"]] == [NUMBER]


def test_a_consent_lets_its_organisation_call_until_it_is_withdrawn(client, config, store, device, acme):
    registered(client, config, device, preferences={"refuse": "all"})
    given = client.post("/v1/dnc/consents", headers=device,
                        json={"number": NUMBER, "organization": "acme", "categories": ["loan"]})
    assert given.status_code == 201, given.get_data(as_text=True)
    consent = given.get_json()
    assert {"consent_id", "number", "organization", "categories", "created_at"} <= set(consent)
    assert (consent["number"], consent["organization"], consent["categories"]) == (NUMBER, "acme", ["loan"])

    assert scrub(client, acme, [NUMBER]).get_json()["results"] == [
        {"number": NUMBER, "callable": True, "reason": "consent"}]
    other = key(store, client, "other-bank")
    assert scrub(client, other, [NUMBER]).get_json()["results"] == [
        {"number": NUMBER, "callable": False, "reason": "registered"}]

    withdrawn = client.delete(f"/v1/dnc/consents/{consent['consent_id']}", headers=device)
    assert withdrawn.get_json() == {"consent_id": consent["consent_id"], "withdrawn": True}
    assert scrub(client, acme, [NUMBER]).get_json()["results"][0]["callable"] is False


# --- the telemarketer -------------------------------------------------------------------------------

def test_a_json_scrub_answers_every_number_in_order_and_writes_a_receipt(client, config, device, acme):
    registered(client, config, device, preferences={"refuse": "all"})
    submitted = ["13800138000", "+8613900139000", "12", "not a number"]
    response = scrub(client, acme, submitted)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["results"] == [
        {"number": NUMBER, "callable": False, "reason": "registered"},
        {"number": OTHER, "callable": True, "reason": ""},
        {"number": "12", "callable": False, "reason": "invalid_number"},
        {"number": "not a number", "callable": False, "reason": "invalid_number"},
    ]
    receipts = client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]
    assert len(receipts) == 1
    receipt = receipts[0]
    assert receipt["receipt_id"] == answer["receipt_id"]
    assert (receipt["organization"], receipt["category"], receipt["count"], receipt["callable"]) == ("acme", "loan",
                                                                                                       4, 1)
    assert receipt["sha256"] == digest([NUMBER, OTHER, "12", "not a number"])


def test_a_refused_category_is_not_callable_and_another_is(client, config, device, acme):
    registered(client, config, device)
    assert scrub(client, acme, [NUMBER], category="real_estate").get_json()["results"] == [
        {"number": NUMBER, "callable": False, "reason": "category"}]
    assert scrub(client, acme, [NUMBER], category="insurance").get_json()["results"] == [
        {"number": NUMBER, "callable": True, "reason": ""}]


def test_a_csv_scrub_streams_its_answer_and_writes_the_receipt_when_it_ends(client, config, store, device, acme):
    registered(client, config, device, preferences={"refuse": "all"})
    body = "13800138000\r\n+8613900139000\n12\n\"quoted, with a comma\"\n"
    response = scrub_csv(client, acme, body, buffered=False)
    assert response.status_code == 200
    assert response.is_streamed and response.mimetype == "text/csv"
    receipt_id = response.headers["X-Receipt-Id"]
    assert client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"] == []  # not yet: nothing was sent
    lines = response.get_data(as_text=True).splitlines()
    assert lines == ["number,callable,reason", f"{NUMBER},false,registered", f"{OTHER},true,",
                     "12,false,invalid_number", '"""quoted, with a comma""",false,invalid_number']
    receipt, = client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]
    assert (receipt["receipt_id"], receipt["count"], receipt["callable"]) == (receipt_id, 4, 1)
    assert receipt["sha256"] == digest([NUMBER, OTHER, "12", '"quoted, with a comma"'])


def test_a_csv_and_a_json_scrub_of_the_same_list_have_the_same_digest(client, acme):
    numbers = ["13800138000", "12", "+8613900139000"]
    scrub(client, acme, numbers)
    scrub_csv(client, acme, "\n".join(numbers)).get_data()  # no final newline: the last line counts all the same
    csv_receipt, json_receipt = client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]
    assert csv_receipt["sha256"] == json_receipt["sha256"] == digest([NUMBER, "12", OTHER])
    assert csv_receipt["count"] == json_receipt["count"] == 3


def test_a_large_csv_scrub_is_answered_line_for_line(client, acme):
    numbers = [f"+86138{n:08d}" for n in range(20_000)]
    response = scrub_csv(client, acme, "\n".join(numbers) + "\n")
    lines = response.get_data(as_text=True).splitlines()
    assert len(lines) == 20_001
    assert lines[1] == f"{numbers[0]},true," and lines[-1] == f"{numbers[-1]},true,"
    receipt, = client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]
    assert receipt["count"] == 20_000 and receipt["sha256"] == digest(numbers)


def test_a_csv_scrub_of_more_than_a_million_lines_is_413_and_scrubs_nothing(client, acme, redis_client):
    before = redis_state(redis_client)
    assert_error(scrub_csv(client, acme, b"1\n" * (dnc_api.MAX_CSV_LINES + 1)), 413, "body_too_large")
    assert redis_state(redis_client) == before


def test_a_csv_scrub_of_exactly_a_million_lines_is_counted_whole(client, acme, redis_client, monkeypatch):
    # The quota says what was counted (and refuses it); the scrub itself is the benchmark's (bench/dnc_bench.py).
    charged = []
    monkeypatch.setattr(dnc_api.dnc, "charge_quota",
                        lambda store, organization, count: charged.append(count) or False)
    assert_error(scrub_csv(client, acme, b"1\n" * dnc_api.MAX_CSV_LINES), 429, "quota_exceeded")
    assert charged == [dnc_api.MAX_CSV_LINES]


@pytest.mark.parametrize("body, line", [(b"1\n" + b"9" * 300 + b"\n", 2), (b"9" * 257, 1),
                                        (b"1\n" * 131_000 + b"9" * 300, 131_001)])  # across the spool's chunks
def test_a_csv_line_longer_than_256_bytes_is_400_and_scrubs_nothing(client, acme, redis_client, body, line):
    before = redis_state(redis_client)
    error = assert_error(scrub_csv(client, acme, body), 400, "validation_error")
    assert error["details"] == {"line": line}
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("charset", ["latin-1", "UTF-16", "gbk"])
def test_a_csv_scrub_in_another_charset_is_415_and_scrubs_nothing(client, acme, redis_client, charset):
    before = redis_state(redis_client)
    answer = client.post("/v1/dnc/scrub?category=loan", data="13800138000\n".encode(charset),
                         headers={**acme, "Content-Type": f"text/csv; charset={charset}"})
    assert charset.lower() in assert_error(answer, 415, "unsupported_media_type")["message"]
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("charset", ["UTF-8", "utf8", "us-ascii"])
def test_a_csv_scrub_that_says_it_is_utf8_or_ascii_is_scrubbed(client, acme, charset):
    answer = client.post("/v1/dnc/scrub?category=loan", data=b"13800138000\n",
                         headers={**acme, "Content-Type": f"text/csv; charset={charset}"})
    assert answer.get_data(as_text=True).splitlines() == ["number,callable,reason", f"{NUMBER},true,"]


def test_an_empty_csv_scrub_is_400(client, acme, redis_client):
    before = redis_state(redis_client)
    assert_error(scrub_csv(client, acme, b""), 400, "validation_error")
    assert redis_state(redis_client) == before


def test_a_scrub_past_the_daily_quota_is_429_with_nothing_scrubbed_and_no_receipt(config, redis_client):
    config.scrub_daily_numbers = 3
    app = create_app(config)
    client = app.test_client()
    acme = key(app.extensions["callmark"], client)
    before = redis_state(redis_client)
    refused = assert_error(scrub(client, acme, ["13800138000", "13800138001", "13800138002", "13800138003"]),
                           429, "quota_exceeded")
    assert refused["details"] == {"quota": 3, "requested": 4, "resets_at": "2026-10-29T00:00:00Z"}
    assert_error(scrub_csv(client, acme, "13800138000\n13800138001\n13800138002\n13800138003\n"), 429,
                 "quota_exceeded")
    assert redis_state(redis_client) == before
    assert scrub(client, acme, ["13800138000", "13800138001", "13800138002"]).status_code == 200
    assert_error(scrub(client, acme, ["13800138000"]), 429, "quota_exceeded")
    assert len(client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]) == 1


def test_each_key_sees_only_its_own_receipts(client, store, acme):
    other = key(store, client, "globex")
    scrub(client, acme, [NUMBER])
    assert client.get("/v1/dnc/receipts", headers=other).get_json() == {"receipts": []}
    assert [r["organization"] for r in client.get("/v1/dnc/receipts", headers=acme).get_json()["receipts"]] == [
        "acme"]


def test_the_scrub_takes_a_scrub_or_admin_key_only(client, store, device):
    body = {"category": "loan", "numbers": [NUMBER]}
    assert_error(client.post("/v1/dnc/scrub", json=body), 401, "unauthorized")
    assert_error(client.post("/v1/dnc/scrub", json=body, headers=device), 401, "unauthorized")
    assert_error(client.post("/v1/dnc/scrub", json=body, headers=key(store, client, "vendor", "feed")), 403,
                 "forbidden")
    assert client.post("/v1/dnc/scrub", json=body, headers=key(store, client, "operator", "admin")).status_code == 200


# --- bad input: 4xx in the one shape, nothing changed ---------------------------------------------------

BAD_SCRUBS = [
    pytest.param({"category": "fraud", "numbers": [NUMBER]}, id="not-a-marketing-tag"),
    pytest.param({"category": "no_such_tag", "numbers": [NUMBER]}, id="unknown-tag"),
    pytest.param({"numbers": [NUMBER]}, id="no-category"),
    pytest.param({"category": "loan", "numbers": []}, id="no-numbers"),
    pytest.param({"category": "loan", "numbers": [NUMBER] * 10_001}, id="too-many"),
    pytest.param({"category": "loan", "numbers": [12]}, id="not-a-string"),
    pytest.param({"category": "loan", "numbers": ["1" * 101]}, id="too-long"),
    pytest.param({"category": "loan", "numbers": [NUMBER], "call_at": "2026-11-02T10:00:00"}, id="naive-time"),
    pytest.param({"category": "loan", "numbers": [NUMBER], "call_at": "soon"}, id="not-a-time"),
    pytest.param({"category": "loan", "numbers": [NUMBER], "list": "x"}, id="unknown-field"),
]


@pytest.mark.parametrize("body", BAD_SCRUBS)
def test_a_bad_json_scrub_is_400_and_changes_nothing(client, acme, redis_client, body):
    before = redis_state(redis_client)
    assert_error(client.post("/v1/dnc/scrub", json=body, headers=acme), 400, "validation_error")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("query", ["category=fraud", "", "category=loan&call_at=yesterday", "category=loan&x=1"])
def test_a_csv_scrub_with_a_bad_query_is_400_and_changes_nothing(client, acme, redis_client, query):
    before = redis_state(redis_client)
    assert_error(scrub_csv(client, acme, f"{NUMBER}\n", query), 400, "validation_error")
    assert redis_state(redis_client) == before


def test_a_scrub_in_another_format_is_415(client, acme, redis_client):
    before = redis_state(redis_client)
    response = client.post("/v1/dnc/scrub?category=loan", data=f"{NUMBER}\n",
                           headers={**acme, "Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    assert redis_state(redis_client) == before


BAD_PREFERENCES = [
    pytest.param({"refuse": ["fraud"]}, id="fraud-is-never-callable"),
    pytest.param({"refuse": ["debt_collection"]}, id="debt-collection"),
    pytest.param({"refuse": ["harassment"]}, id="harassment"),
    pytest.param({"refuse": ["no_such_tag"]}, id="unknown-tag"),
    pytest.param({"refuse": []}, id="nothing"),
    pytest.param({"refuse": "some"}, id="not-all"),
    pytest.param({"refuse": [["loan"]]}, id="nested"),
    pytest.param({}, id="no-refuse"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "9:00", "to": "12:00",
                                                       "categories": ["loan"]}]}, id="one-digit-hour"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "24:00", "to": "09:00",
                                                       "categories": ["loan"]}]}, id="from-24"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00", "to": "24:01",
                                                       "categories": ["loan"]}]}, id="past-24"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["monday"], "from": "09:00", "to": "12:00",
                                                       "categories": ["loan"]}]}, id="day-name"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": [], "from": "09:00", "to": "12:00",
                                                       "categories": ["loan"]}]}, id="no-days"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00", "to": "12:00",
                                                       "categories": ["fraud"]}]}, id="window-for-fraud"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "from": "09:00\n", "to": "12:00",
                                                       "categories": ["loan"]}]}, id="trailing-newline"),
    pytest.param({"refuse": "all", "accept_windows": [{"days": ["mon"], "to": "12:00", "categories": ["loan"]}]},
                 id="no-from"),
    pytest.param({"refuse": "all", "other": 1}, id="unknown-field"),
]


@pytest.mark.parametrize("preferences", BAD_PREFERENCES)
def test_bad_preferences_are_400_and_change_nothing(client, config, device, redis_client, preferences):
    registered(client, config, device)
    started = verify(client, device, OTHER).get_json()
    before = redis_state(redis_client)
    response = client.post("/v1/dnc/registrations", headers=device, json={
        "verification_id": started["verification_id"], "code": code_sent_to(config, OTHER),
        "preferences": preferences})
    assert_error(response, 400, "validation_error")
    assert_error(client.put(f"/v1/dnc/registrations/{NUMBER}", headers=device, json={"preferences": preferences}),
                 400, "validation_error")
    assert redis_state(redis_client) == before


def test_a_non_marketing_refusal_says_why(client, config, device):
    started = verify(client, device).get_json()
    error = assert_error(client.post("/v1/dnc/registrations", headers=device, json={
        "verification_id": started["verification_id"], "code": code_sent_to(config, NUMBER),
        "preferences": {"refuse": ["loan", "fraud"]}}), 400, "validation_error")
    assert "'fraud' is not a marketing tag" in json.dumps(error["details"])


@pytest.mark.parametrize("method, path, body", [
    pytest.param("post", "/v1/dnc/verifications", {"number": "12"}, id="verify-invalid-number"),
    pytest.param("post", "/v1/dnc/verifications", {"number": NUMBER, "region": "XX"}, id="verify-unknown-region"),
    pytest.param("post", "/v1/dnc/verifications", {}, id="verify-no-number"),
    pytest.param("post", "/v1/dnc/registrations", {"verification_id": "v", "code": "12345", "preferences":
                                                   {"refuse": "all"}}, id="register-five-digit-code"),
    pytest.param("post", "/v1/dnc/registrations", {"verification_id": "v", "code": "123456"}, id="register-no-prefs"),
    pytest.param("post", "/v1/dnc/consents", {"number": NUMBER, "organization": "acme", "categories": ["fraud"]},
                 id="consent-to-fraud"),
    pytest.param("post", "/v1/dnc/consents", {"number": NUMBER, "organization": "a b", "categories": ["loan"]},
                 id="consent-bad-organisation"),
    pytest.param("post", "/v1/dnc/consents", {"number": "12", "organization": "acme", "categories": ["loan"]},
                 id="consent-invalid-number"),
    pytest.param("put", "/v1/dnc/registrations/12", {"preferences": {"refuse": "all"}}, id="update-invalid-number"),
    pytest.param("delete", "/v1/dnc/registrations/12", None, id="remove-invalid-number"),
])
def test_bad_phone_requests_are_400_and_change_nothing(client, config, device, redis_client, method, path, body):
    registered(client, config, device)
    before, sent = redis_state(redis_client), len(outbox(config))
    response = getattr(client, method)(path, headers=device, **({"json": body} if body is not None else {}))
    assert_error(response, 400, "validation_error", "invalid_number")
    assert redis_state(redis_client) == before
    assert len(outbox(config)) == sent


def test_phone_routes_need_a_device_token(client, acme):
    assert_error(client.post("/v1/dnc/verifications", json={"number": NUMBER}), 401, "unauthorized")
    assert_error(client.get("/v1/dnc/registrations/me", headers=acme), 401, "unauthorized")


# --- SMS: production without a gateway, and the pumping guard ------------------------------------------

def test_production_without_a_gateway_answers_503_sms_unavailable_and_stores_nothing(config, redis_client):
    client = create_app(production(config)).test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    before = redis_state(redis_client)
    assert_error(verify(client, device), 503, "sms_unavailable")
    assert redis_state(redis_client) == before


def pumping_app(config, **limits: str):
    """Production with a gateway that records what it is given, and `limits`."""
    app = create_app(production(config, **limits))
    app.extensions[dnc_api.SMS] = gateway = Recorder()
    return app.test_client(), gateway


def phone(client, host: int) -> tuple[dict[str, str], dict[str, str]]:
    """A device on its own network: its Authorization header and its environ."""
    here = {"REMOTE_ADDR": f"198.51.{host}.7"}
    token = client.post("/v1/devices", environ_base=here).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}, here


def test_codes_to_one_number_are_limited_whichever_devices_ask(config):
    client, gateway = pumping_app(config, verifications_number="2/hour")
    phones = [phone(client, host) for host in range(4)]
    for headers, here in phones[:2]:
        assert client.post("/v1/dnc/verifications", json={"number": NUMBER}, headers=headers,
                           environ_base=here).status_code == 202
    headers, here = phones[2]
    refused = client.post("/v1/dnc/verifications", json={"number": "138-0013-8000"}, headers=headers,
                          environ_base=here)
    assert_error(refused, 429, "rate_limited")
    assert "Retry-After" in refused.headers
    assert client.post("/v1/dnc/verifications", json={"number": OTHER}, headers=headers,
                       environ_base=here).status_code == 202
    assert [to for to, _ in gateway.sent] == [NUMBER, NUMBER, OTHER]


def test_codes_to_a_foreign_country_are_limited_whichever_numbers_and_devices(config):
    client, gateway = pumping_app(config, verifications_country="3/hour")
    foreign = ["+447400123456", "+447400123457", "+447400123458", "+447400123459"]
    answers = []
    for host, number in enumerate(foreign):
        headers, here = phone(client, host)
        answers.append(client.post("/v1/dnc/verifications", json={"number": number}, headers=headers,
                                   environ_base=here).status_code)
    assert answers == [202, 202, 202, 429]
    headers, here = phone(client, 9)  # another country, and the service's own, keep their budgets
    for number in ("+12025550143", NUMBER):
        assert client.post("/v1/dnc/verifications", json={"number": number}, headers=headers,
                           environ_base=here).status_code == 202
    assert len(gateway.sent) == 5


def test_production_allows_five_codes_an_hour_per_device(config):
    client, gateway = pumping_app(config)
    headers, here = phone(client, 1)
    answers = [client.post("/v1/dnc/verifications", json={"number": f"+86138001380{n:02d}"}, headers=headers,
                           environ_base=here).status_code for n in range(6)]
    assert answers == [202] * 5 + [429]


def test_a_device_refused_by_its_own_limit_spends_no_destination_budget(config):
    client, gateway = pumping_app(config, verifications="1/hour", verifications_number="2/hour")
    first, here = phone(client, 1)
    assert client.post("/v1/dnc/verifications", json={"number": NUMBER}, headers=first,
                       environ_base=here).status_code == 202
    for _ in range(3):
        assert client.post("/v1/dnc/verifications", json={"number": NUMBER}, headers=first,
                           environ_base=here).status_code == 429
    second, there = phone(client, 2)
    assert client.post("/v1/dnc/verifications", json={"number": NUMBER}, headers=second,
                       environ_base=there).status_code == 202


def test_no_rate_limit_key_names_a_destination(config, redis_client):
    client, _ = pumping_app(config)
    headers, here = phone(client, 1)
    for number in (NUMBER, "+447400123456"):
        client.post("/v1/dnc/verifications", json={"number": number}, headers=headers, environ_base=here)
    keys = list(redis_client.scan_iter("cm:rl:*"))
    assert keys
    for key_name in keys:
        assert "13800138000" not in key_name and "7400123456" not in key_name, key_name


def test_call_at_places_the_call_in_the_numbers_time_zone(client, config, device, acme):
    registered(client, config, device)  # loan refused but on weekend mornings, 10:00 to 12:00 in China

    def verdict(call_at: str) -> dict:
        return scrub(client, acme, [NUMBER], call_at=call_at).get_json()["results"][0]

    assert verdict("2026-11-07T10:30:00+08:00") == {"number": NUMBER, "callable": True, "reason": ""}  # a Saturday
    assert verdict("2026-11-07T02:30:00Z")["callable"] is True
    assert verdict("2026-11-07T10:30:00Z") == {"number": NUMBER, "callable": False, "reason": "outside_window"}
    answer = scrub_csv(client, acme, NUMBER, "category=loan&call_at=2026-11-07T02:30:00Z").get_data(as_text=True)
    assert answer.splitlines()[1] == f"{NUMBER},true,"
