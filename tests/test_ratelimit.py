"""Rate limits on the shared Redis: 429 with the error shape, shared by workers, kept across restarts."""
from __future__ import annotations

import time

import pytest
from limits import parse_many

from blocklist import apikeys, create_app, ratelimit
from blocklist.config import RATE_LIMIT_DEFAULTS, RATE_LIMIT_SETTINGS, Config
from blocklist.errors import ConfigError
from tests.support import assert_error, redis_state

E164 = "+8613800138000"


def app_with(config: Config, **limits: str):
    config.rate_limits = dict(limits)
    return create_app(config)


def feed_key(app) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(app.extensions['callmark'], 'vendor', 'feed')}"}


def per_second(limit: str) -> float:
    """The tightest rate a limit string allows, in requests per second."""
    return min(item.amount / item.get_expiry() for item in parse_many(limit))


def test_the_request_past_the_limit_gets_429_with_retry_after_and_the_error_shape(config):
    app = app_with(config, feed="3/minute")
    client, key = app.test_client(), feed_key(app)
    for _ in range(3):
        assert client.get("/v1/feed", headers=key).status_code == 200
    response = client.get("/v1/feed", headers=key)
    error = assert_error(response, 429, "rate_limited")
    assert "3 per 1 minute" in error["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())


def test_the_export_shares_the_feed_limit(config):
    app = app_with(config, feed="2/minute")
    client, key = app.test_client(), feed_key(app)
    assert client.get("/v1/feed", headers=key).status_code == 200
    assert client.get("/v1/feed/export", headers=key).status_code == 200
    assert_error(client.get("/v1/feed/export", headers=key), 429, "rate_limited")


def test_the_feed_limit_counts_per_key(config):
    app = app_with(config, feed="2/minute")
    client, store = app.test_client(), app.extensions["callmark"]
    first = feed_key(app)
    second = {"Authorization": f"Bearer {apikeys.create(store, 'other-vendor', 'feed')}"}
    for _ in range(2):
        client.get("/v1/feed", headers=first)
    assert_error(client.get("/v1/feed", headers=first), 429, "rate_limited")
    assert client.get("/v1/feed", headers=second).status_code == 200


def test_a_rejected_request_writes_nothing_but_the_counter(config, redis_client):
    client = app_with(config, reports="1/minute").test_client()
    headers = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    assert client.post("/v1/reports", headers=headers, json={"number": E164, "tag": "loan"}).status_code == 201
    before = redis_state(redis_client)
    response = client.post("/v1/reports", headers=headers, json={"number": "+8613900139000", "tag": "fraud"})
    assert_error(response, 429, "rate_limited")
    assert redis_state(redis_client) == before


def test_limits_are_shared_by_two_workers_on_one_redis(config):
    first = app_with(config, feed="3/minute")
    key = feed_key(first)
    second = app_with(config, feed="3/minute")
    a, b = first.test_client(), second.test_client()
    assert a.get("/v1/feed", headers=key).status_code == 200
    assert b.get("/v1/feed", headers=key).status_code == 200
    assert a.get("/v1/feed", headers=key).status_code == 200
    assert_error(b.get("/v1/feed", headers=key), 429, "rate_limited")
    assert_error(a.get("/v1/feed", headers=key), 429, "rate_limited")


def test_limits_survive_a_restart(config):
    app = app_with(config, feed="3/minute")
    key = feed_key(app)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/v1/feed", headers=key).status_code == 200
    del app, client
    restarted = app_with(config, feed="3/minute").test_client()
    assert_error(restarted.get("/v1/feed", headers=key), 429, "rate_limited")


def test_registration_is_limited_per_client_address(config):
    client = app_with(config, registration="2/minute").test_client()
    here = {"REMOTE_ADDR": "198.51.100.7"}
    for _ in range(2):
        assert client.post("/v1/devices", environ_base=here).status_code == 201
    assert_error(client.post("/v1/devices", environ_base=here), 429, "rate_limited")
    assert client.post("/v1/devices", environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 201


def test_lookups_are_limited_per_device_token(config):
    client = app_with(config, lookups="2/minute").test_client()
    first, second = ({"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"} for _ in range(2))
    for _ in range(2):
        assert client.get("/v1/lookup/prefix/abcd", headers=first).status_code == 200
    assert_error(client.get("/v1/lookup/prefix/abcd", headers=first), 429, "rate_limited")
    assert client.get("/v1/lookup/prefix/abcd", headers=second).status_code == 200


def test_both_lookup_routes_share_one_budget(config):
    client = app_with(config, lookups="2/minute").test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    for _ in range(2):
        assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    assert_error(client.get("/v1/lookup/prefix/abcd", headers=device), 429, "rate_limited")


def test_a_number_lookup_is_counted_in_its_own_round_trip_where_flask_limiter_sees_it(config):
    app = app_with(config, lookups="5/minute;100/hour")
    client = app.test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    guard = app.extensions["callmark.ratelimit"]
    assert guard.shares_round_trips
    for _ in range(3):
        assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    with app.test_request_context(headers=device):
        caller = ratelimit._caller()
    stats = [guard.limiter.limiter.get_window_stats(item, "lookups", caller).remaining
             for item in guard.limits["lookups"]]
    assert stats == [2, 97]
    for _ in range(2):
        assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    response = client.get(f"/v1/numbers/{E164}", headers=device)
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_a_refused_number_lookup_still_counts(config):
    client = app_with(config, lookups="2/minute").test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    assert_error(client.get("/v1/numbers/not-a-number", headers=device), 400, "invalid_number")
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    assert_error(client.get(f"/v1/numbers/{E164}", headers=device), 429, "rate_limited")


def test_a_lookup_counts_after_redis_forgot_the_scripts(config, redis_client):
    client = app_with(config, lookups="3/minute").test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    client.post("/v1/reports", json={"number": E164, "tag": "loan"}, headers=device)
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    redis_client.script_flush()
    body = client.get(f"/v1/numbers/{E164}", headers=device).get_json()
    assert body["verdict"] == "warn" and body["tags"]["loan"]["reporters"] == 1
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    assert_error(client.get(f"/v1/numbers/{E164}", headers=device), 429, "rate_limited")


BATCH = {"reports": [{"number": f"+86138{i:08d}", "tag": "loan"} for i in range(50)]}


def test_a_batch_of_reports_counts_once(config):
    client = app_with(config, reports="2/minute").test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    for _ in range(2):
        assert client.post("/v1/reports/batch", headers=device, json=BATCH).status_code == 200
    assert_error(client.post("/v1/reports/batch", headers=device, json=BATCH), 429, "rate_limited")


def test_single_and_batch_reports_share_one_budget(config):
    client = app_with(config, reports="2/minute").test_client()
    device = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
    assert client.post("/v1/reports/batch", headers=device, json=BATCH).status_code == 200
    assert client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}).status_code == 201
    assert_error(client.post("/v1/reports/batch", headers=device, json=BATCH), 429, "rate_limited")


def test_unlimited_routes_stay_open(config):
    client = app_with(config, registration="1/minute", lookups="1/minute", feed="1/minute").test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/tags").status_code == 200


# --- settings -----------------------------------------------------------------------------------

def test_development_defaults_are_generous():
    config = Config(profile="development")
    config.validate()
    assert config.rate_limits == RATE_LIMIT_DEFAULTS["development"]
    assert per_second(config.rate_limits["registration"]) * 60 >= 1000
    assert per_second(config.rate_limits["feed"]) >= 50


def test_production_defaults_are_tighter_than_development():
    config = Config(profile="production", secret_key="x" * 32)
    config.validate()
    for name, limit in config.rate_limits.items():
        assert per_second(limit) < per_second(RATE_LIMIT_DEFAULTS["development"][name]), name


def test_sixty_quick_feed_requests_pass_in_development(app, store):
    client = app.test_client()
    key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    started = time.monotonic()
    statuses = [client.get("/v1/feed", headers=key).status_code for _ in range(60)]
    assert statuses == [200] * 60
    assert time.monotonic() - started < 10


def test_a_setting_overrides_only_its_own_limit():
    config = Config.from_env({RATE_LIMIT_SETTINGS["feed"]: "7/second", "CALLMARK_PROFILE": "development"})
    assert config.rate_limits["feed"] == "7/second"
    assert config.rate_limits["registration"] == RATE_LIMIT_DEFAULTS["development"]["registration"]


@pytest.mark.parametrize("value", ["lots", "5/fortnight", "-1/minute"])
def test_a_malformed_limit_is_refused_at_start(value):
    with pytest.raises(ConfigError):
        Config.from_env({RATE_LIMIT_SETTINGS["reports"]: value, "CALLMARK_PROFILE": "development"})
