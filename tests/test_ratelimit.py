"""Rate limits on the shared Redis: 429 with the error shape, shared by workers, kept across restarts."""
from __future__ import annotations

import base64
import ipaddress
import os
import threading
import time

import pytest
import redis
from limits import parse_many

from blocklist import apikeys
from blocklist.config import RATE_LIMIT_DEFAULTS, RATE_LIMIT_SETTINGS, Config
from blocklist.errors import ConfigError
from blocklist.web import create_app, ratelimit
from tests.support import assert_error, redis_state

E164 = "+8613800138000"


def app_with(config: Config, **limits: str):
    config.rate_limits = dict(limits)
    return create_app(config)


def production(config: Config, **limits: str) -> Config:
    """The production profile (its abuse guards and default limits) on the test's Redis; `limits` override."""
    return config.replace(profile="production", rate_limits=dict(limits),
                          signing_key=base64.b64encode(os.urandom(32)).decode())


def register(client, address: str = "127.0.0.1") -> dict[str, str]:
    """Register a device from `address`; return the Authorization header that acts as it."""
    response = client.post("/v1/devices", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 201, response.get_data(as_text=True)
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


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


def batch(count: int, start: int = 0) -> dict:
    return {"reports": [{"number": f"+86138{i:08d}", "tag": "loan"} for i in range(start, start + count)]}


def statuses(response) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [result["status"] for result in response.get_json()["results"]]


def test_every_item_of_a_batch_counts_against_the_report_budget(config):
    client = app_with(config, reports="5/minute").test_client()
    device = register(client)
    response = client.post("/v1/reports/batch", headers=device, json=batch(8))
    assert statuses(response) == [201] * 5 + [429] * 3
    assert response.get_json()["accepted"] == 5
    assert_error(client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}), 429, "rate_limited")


def test_batch_items_past_the_budget_get_429_each_and_the_valid_items_within_it_are_kept(config):
    client = app_with(config, reports="3/minute").test_client()
    device = register(client)
    items = [{"number": "+8613800000001", "tag": "loan"}, {"number": "12", "tag": "loan"},
             *({"number": f"+861380000000{i}", "tag": "fraud"} for i in (2, 3, 4))]
    response = client.post("/v1/reports/batch", headers=device, json={"reports": items})
    assert statuses(response) == [201, 400, 201, 201, 429]
    refused = response.get_json()["results"][4]
    assert refused["index"] == 4 and set(refused["error"]) == {"code", "message", "details"}
    assert refused["error"]["code"] == "rate_limited" and "3 per 1 minute" in refused["error"]["message"]
    assert 0 < refused["error"]["details"]["retry_after"] <= 60
    assert 0 < int(response.headers["Retry-After"]) <= 60
    lookup = {"Authorization": register(client)["Authorization"]}
    assert client.get("/v1/numbers/+8613800000003", headers=lookup).get_json()["verdict"] == "warn"
    assert client.get("/v1/numbers/+8613800000004", headers=lookup).get_json()["verdict"] == "unknown"


def test_a_batch_within_the_budget_has_no_retry_after(config):
    client = app_with(config, reports="5/minute").test_client()
    response = client.post("/v1/reports/batch", headers=register(client), json=batch(5))
    assert statuses(response) == [201] * 5
    assert "Retry-After" not in response.headers


def test_a_batch_from_a_device_that_spent_its_budget_gets_429(config):
    client = app_with(config, reports="1/minute").test_client()
    device = register(client)
    assert client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}).status_code == 201
    response = client.post("/v1/reports/batch", headers=device, json=batch(3))
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_single_and_batch_reports_share_one_budget(config):
    client = app_with(config, reports="3/minute").test_client()
    device = register(client)
    assert client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}).status_code == 201
    assert statuses(client.post("/v1/reports/batch", headers=device, json=batch(5))) == [201, 201, 429, 429, 429]
    assert_error(client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}), 429, "rate_limited")


def test_a_batch_of_invalid_items_still_counts_as_one_request(config):
    client = app_with(config, reports="2/minute").test_client()
    device = register(client)
    invalid = {"reports": [{"number": "12", "tag": "loan"}] * 10}
    assert statuses(client.post("/v1/reports/batch", headers=device, json=invalid)) == [400] * 10
    assert client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}).status_code == 201
    assert_error(client.post("/v1/reports/batch", headers=device, json=invalid), 429, "rate_limited")


def test_concurrent_batches_of_one_device_never_file_more_than_the_budget(config):
    app = app_with(config, reports="50/minute")
    device = register(app.test_client())
    accepted = []

    def send(start: int) -> None:
        response = app.test_client().post("/v1/reports/batch", headers=device, json=batch(200, start))
        accepted.append(response.get_json()["accepted"] if response.status_code == 200 else 0)

    threads = [threading.Thread(target=send, args=(i * 200,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 50


def test_a_production_batch_of_500_files_only_the_minute_budget(config):
    client = create_app(production(config)).test_client()
    device = register(client)
    response = client.post("/v1/reports/batch", headers=device, json=batch(500))
    assert statuses(response).count(201) == 60
    assert_error(client.post("/v1/reports/batch", headers=device, json=batch(10, 500)), 429, "rate_limited")


# --- registrations per network ------------------------------------------------------------------

def test_registrations_are_limited_per_network_as_well_as_per_address(config):
    client = app_with(config, registration="20/hour", registration_network="30/hour").test_client()
    answers = [client.post("/v1/devices", environ_base={"REMOTE_ADDR": f"203.0.113.{host}"}).status_code
               for host in (9, 10, 11) for _ in range(21)]
    assert answers.count(201) == 30
    assert answers[20] == 429  # the address limit still holds
    assert client.post("/v1/devices", environ_base={"REMOTE_ADDR": "203.0.114.9"}).status_code == 201


def test_ipv6_registrations_are_limited_per_48_bit_network(config):
    client = app_with(config, registration="2/hour", registration_network="5/hour").test_client()
    answers = [client.post("/v1/devices", environ_base={"REMOTE_ADDR": f"2001:db8:1:{i:x}::1"}).status_code
               for i in range(8)]
    assert answers == [201] * 5 + [429] * 3
    assert client.post("/v1/devices", environ_base={"REMOTE_ADDR": "2001:db8:2::1"}).status_code == 201


def test_production_accepts_sixty_registrations_an_hour_from_one_network(config):
    client = create_app(production(config)).test_client()
    answers = [client.post("/v1/devices", environ_base={"REMOTE_ADDR": f"203.0.113.{host}"}).status_code
               for host in (9, 10, 11, 12) for _ in range(20)]
    assert answers.count(201) == 60
    assert_error(client.post("/v1/devices", environ_base={"REMOTE_ADDR": "203.0.113.13"}), 429, "rate_limited")


# --- what the counters name ---------------------------------------------------------------------

@pytest.mark.parametrize("address,network", [("198.51.100.7", "198.51.100"), ("2001:db8:7:1::5", "2001:db8")])
def test_no_rate_limit_key_names_the_client_address_or_network(config, redis_client, address, network):
    client = create_app(production(config)).test_client()
    here = {"REMOTE_ADDR": address}
    device = register(client, address)
    client.post("/v1/reports", headers=device, environ_base=here, json={"number": E164, "tag": "loan"})
    client.post("/v1/reports/batch", headers=device, environ_base=here, json=batch(2))
    client.get(f"/v1/numbers/{E164}", headers=device, environ_base=here)
    client.get("/v1/lookup/prefix/abcd", headers=device, environ_base=here)
    client.post("/v1/disputes", headers=device, environ_base=here,
                json={"number": E164, "reason": "my shop", "contact": "owner@example.com"})
    client.post("/v1/calls", environ_base=here, json={})  # no token: counted by address
    client.delete("/v1/devices/me", headers=device, environ_base=here)
    keys = list(redis_client.scan_iter("cm:rl:*"))
    assert len(keys) >= 10
    exploded = ipaddress.ip_address(address).exploded
    for key in keys:
        assert address not in key and network not in key and exploded not in key, key


# --- lookups per network and device age ---------------------------------------------------------

def test_lookups_are_limited_per_network(config):
    client = app_with(config, lookups_network="3/minute").test_client()
    first, second, elsewhere = register(client), register(client), register(client)
    near, far = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "192.0.2.1"}
    assert client.get(f"/v1/numbers/{E164}", headers=first, environ_base=near).status_code == 200
    assert client.get("/v1/lookup/prefix/abcd", headers=first, environ_base=near).status_code == 200
    assert client.get("/v1/lookup/prefix/abcd", headers=second,
                      environ_base={"REMOTE_ADDR": "203.0.113.8"}).status_code == 200
    assert_error(client.get(f"/v1/numbers/{E164}", headers=second, environ_base={"REMOTE_ADDR": "203.0.113.9"}),
                 429, "rate_limited")
    assert_error(client.get("/v1/lookup/prefix/abcd", headers=second, environ_base=near), 429, "rate_limited")
    assert client.get("/v1/lookup/prefix/abcd", headers=elsewhere, environ_base=far).status_code == 200


def test_fresh_devices_get_a_smaller_lookup_budget_until_they_age(config, clock):
    client = app_with(config, lookups_fresh="2/day").test_client()
    device = register(client)
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    assert client.get("/v1/lookup/prefix/abcd", headers=device).status_code == 200
    response = client.get(f"/v1/numbers/{E164}", headers=device)
    assert_error(response, 429, "rate_limited")
    assert "2 per 1 day" in response.get_json()["error"]["message"]
    assert_error(client.get("/v1/lookup/prefix/abcd", headers=device), 429, "rate_limited")
    clock.advance(days=config.fresh_device_days + 1)
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    assert client.get("/v1/lookup/prefix/abcd", headers=device).status_code == 200


def test_api_keys_keep_their_own_lookup_limit_on_any_network(config):
    app = app_with(config, lookups="4/minute", lookups_network="1/minute", lookups_fresh="1/minute")
    client, key, near = app.test_client(), feed_key(app), {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(4):
        assert client.get(f"/v1/numbers/{E164}", headers=key, environ_base=near).status_code == 200
    assert_error(client.get(f"/v1/numbers/{E164}", headers=key, environ_base=near), 429, "rate_limited")
    device = register(client)
    assert client.get(f"/v1/numbers/{E164}", headers=device, environ_base=near).status_code == 200
    assert_error(client.get(f"/v1/numbers/{E164}", headers=device, environ_base=near), 429, "rate_limited")


def test_a_number_lookup_is_one_round_trip_with_all_its_counters(config, monkeypatch):
    if config.redis_cluster:
        pytest.skip("counts the round trips of the single-node client")
    app = app_with(config)
    client = app.test_client()
    device = register(client)
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200  # the token is now cached
    trips: list = []
    command, execute = redis.Redis.execute_command, redis.client.Pipeline.execute

    def counted_command(self, *args, **options):
        trips.append(args[0])
        return command(self, *args, **options)

    def counted_execute(self, *args, **options):
        trips.append([queued[0][0] for queued in self.command_stack])
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_execute)
    assert client.get(f"/v1/numbers/{E164}", headers=device).status_code == 200
    counters = sum(len(app.extensions["callmark.ratelimit"].limits[name])
                   for name in ("lookups", "lookups_network", "lookups_fresh"))
    assert trips == [["EVALSHA"] * (1 + counters)]


# --- erasure and disputes -----------------------------------------------------------------------

def test_erasing_a_device_is_rate_limited(config):
    client = app_with(config, erasure="1/minute").test_client()
    device = register(client)
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    response = client.delete("/v1/devices/me", headers=device)
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_a_device_past_its_report_budget_can_still_erase_itself(config):
    client = app_with(config, reports="1/minute").test_client()
    device = register(client)
    client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"})
    assert_error(client.post("/v1/reports", headers=device, json={"number": E164, "tag": "loan"}), 429, "rate_limited")
    assert client.delete("/v1/devices/me", headers=device).get_json() == {"erased": True, "votes_withdrawn": 1}


def dispute(client, device, number: str, address: str = "127.0.0.1"):
    return client.post("/v1/disputes", headers=device, environ_base={"REMOTE_ADDR": address},
                       json={"number": number, "reason": "my shop's line", "contact": "owner@example.com"})


def test_disputes_are_limited_per_device(config):
    client = app_with(config, disputes="2/day").test_client()
    device = register(client)
    assert [dispute(client, device, f"+861380013800{i}").status_code for i in range(2)] == [201, 201]
    response = dispute(client, device, "+8613800138009")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert dispute(client, register(client), "+8613800138009").status_code == 201


def test_disputes_are_limited_per_network(config):
    client = app_with(config, disputes_network="3/day").test_client()
    first, second = register(client), register(client)
    assert dispute(client, first, "+8613800138001", "203.0.113.7").status_code == 201
    assert dispute(client, first, "+8613800138002", "203.0.113.7").status_code == 201
    assert dispute(client, second, "+8613800138003", "203.0.113.8").status_code == 201
    assert_error(dispute(client, second, "+8613800138004", "203.0.113.9"), 429, "rate_limited")
    assert dispute(client, second, "+8613800138004", "192.0.2.1").status_code == 201


def test_production_allows_five_disputes_a_day_per_device(config):
    client = create_app(production(config)).test_client()
    device = register(client)
    answers = [dispute(client, device, f"+861380013800{i}").status_code for i in range(6)]
    assert answers == [201] * 5 + [429]


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


def test_every_limit_has_a_setting_and_a_default_in_both_profiles():
    assert set(RATE_LIMIT_DEFAULTS["production"]) == set(RATE_LIMIT_DEFAULTS["development"]) == set(RATE_LIMIT_SETTINGS)
    assert set(ratelimit.limit_names()) <= set(RATE_LIMIT_SETTINGS)


def test_the_network_limits_are_settings():
    config = Config.from_env({"CALLMARK_RATE_LIMIT_REGISTRATION_NETWORK": "7/hour",
                              "CALLMARK_RATE_LIMIT_LOOKUPS_NETWORK": "8/hour",
                              "CALLMARK_RATE_LIMIT_DISPUTES_NETWORK": "9/day", "CALLMARK_PROFILE": "development"})
    assert [config.rate_limits[name] for name in ("registration_network", "lookups_network", "disputes_network")] == \
        ["7/hour", "8/hour", "9/day"]


def test_a_setting_overrides_only_its_own_limit():
    config = Config.from_env({RATE_LIMIT_SETTINGS["feed"]: "7/second", "CALLMARK_PROFILE": "development"})
    assert config.rate_limits["feed"] == "7/second"
    assert config.rate_limits["registration"] == RATE_LIMIT_DEFAULTS["development"]["registration"]


@pytest.mark.parametrize("value", ["lots", "5/fortnight", "-1/minute"])
def test_a_malformed_limit_is_refused_at_start(value):
    with pytest.raises(ConfigError):
        Config.from_env({RATE_LIMIT_SETTINGS["reports"]: value, "CALLMARK_PROFILE": "development"})
