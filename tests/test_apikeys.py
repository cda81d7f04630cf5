"""API keys: created, listed and revoked by the CLI, stored only hashed; scopes; the one error shape."""
from __future__ import annotations

import pytest

from blocklist import apikeys
from blocklist.web import create_app
from tests.support import assert_error, redis_state
from tests.test_devices import everything_in_redis

E164 = "+8613800138000"


def create_key(app, name: str, scope: str = "feed") -> str:
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", name, "--scope", scope])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- create, list, revoke -----------------------------------------------------------------------

def test_created_key_is_alone_on_the_last_line_and_works(app, client):
    key = create_key(app, "vendor-a")
    assert key.startswith(apikeys.KEY_TEXT_PREFIX) and " " not in key
    assert len(key) >= 40
    assert client.get("/v1/feed", headers=bearer(key)).status_code == 200


def test_each_created_key_is_different(app):
    assert create_key(app, "one") != create_key(app, "two")


def test_list_shows_name_scope_and_last_use_never_the_key(app, client):
    feed_key = create_key(app, "vendor-a", "feed")
    admin_key = create_key(app, "ops", "admin")
    assert client.get("/v1/feed", headers=bearer(feed_key)).status_code == 200
    result = cli(app, "keys", "list")
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t", 1) for line in result.output.strip().splitlines())
    assert set(lines) == {"vendor-a", "ops"}
    assert lines["vendor-a"].startswith("feed\tcreated ")
    assert "last used never" not in lines["vendor-a"]
    assert lines["ops"].startswith("admin\tcreated ")
    assert lines["ops"].endswith("last used never")
    for key in (feed_key, admin_key):
        assert key not in result.output
        assert key[len(apikeys.KEY_TEXT_PREFIX):] not in result.output


def test_redis_never_holds_the_key_text(app, client, redis_client):
    keys = [create_key(app, "vendor-a", "feed"), create_key(app, "ops", "admin")]
    for key in keys:
        assert client.get("/v1/feed", headers=bearer(key)).status_code == 200
    stored = everything_in_redis(redis_client)
    assert stored  # the hashed records are there
    for key in keys:
        secret_part = key[len(apikeys.KEY_TEXT_PREFIX):]
        assert not [text for text in stored if secret_part in text or secret_part[:16] in text]


def test_a_second_key_with_the_same_name_is_refused(app):
    key = create_key(app, "vendor-a")
    result = cli(app, "keys", "create", "--name", "vendor-a", "--scope", "admin")
    assert result.exit_code != 0
    assert "exists" in result.output
    assert apikeys.list_keys(app.extensions["callmark"])[0]["scope"] == "feed"
    assert app.test_client().get("/v1/feed", headers=bearer(key)).status_code == 200


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "semi;colon"])
def test_a_key_name_outside_the_pattern_is_refused(app, redis_client, name):
    result = cli(app, "keys", "create", "--name", name, "--scope", "feed")
    assert result.exit_code != 0
    assert redis_client.dbsize() == 0


def test_an_unknown_scope_is_refused(app, redis_client):
    result = cli(app, "keys", "create", "--name", "x", "--scope", "root")
    assert result.exit_code != 0
    assert redis_client.dbsize() == 0


def test_a_revoked_key_gets_401(app, client):
    key = create_key(app, "vendor-a")
    other = create_key(app, "vendor-b")
    assert client.get("/v1/feed", headers=bearer(key)).status_code == 200
    result = cli(app, "keys", "revoke", "vendor-a")
    assert result.exit_code == 0, result.output
    assert_error(client.get("/v1/feed", headers=bearer(key)), 401, "unauthorized")
    assert_error(client.get(f"/v1/numbers/{E164}", headers=bearer(key)), 401, "unauthorized")
    assert client.get("/v1/feed", headers=bearer(other)).status_code == 200
    assert "vendor-a" not in cli(app, "keys", "list").output


def test_revoking_leaves_no_trace_of_the_key(app, redis_client):
    key = create_key(app, "vendor-a")
    app.test_client().get("/v1/feed", headers=bearer(key))
    assert cli(app, "keys", "revoke", "vendor-a").exit_code == 0
    assert not [text for text in everything_in_redis(redis_client) if "vendor-a" in text]


def test_revoking_an_unknown_key_fails(app):
    result = cli(app, "keys", "revoke", "nobody")
    assert result.exit_code != 0
    assert "nobody" in result.output


def test_a_name_freed_by_revocation_gets_a_new_key(app, client):
    old = create_key(app, "vendor-a")
    cli(app, "keys", "revoke", "vendor-a")
    new = create_key(app, "vendor-a")
    assert new != old
    assert client.get("/v1/feed", headers=bearer(new)).status_code == 200
    assert_error(client.get("/v1/feed", headers=bearer(old)), 401, "unauthorized")


def test_a_key_created_in_code_works_like_one_from_the_cli(store, client):
    key = apikeys.create(store, "in-code", "admin")
    assert client.get("/v1/admin/disputes", headers=bearer(key)).status_code == 200


# --- scopes -------------------------------------------------------------------------------------

ADMIN_READS = ["/v1/admin/disputes", "/v1/admin/audit"]


def test_feed_key_reads_the_feed_the_export_and_numbers(app, client):
    key = create_key(app, "vendor-a", "feed")
    assert client.get("/v1/feed", headers=bearer(key)).status_code == 200
    assert client.get("/v1/feed/export", headers=bearer(key)).status_code == 200
    response = client.get(f"/v1/numbers/{E164}", headers=bearer(key))
    assert response.status_code == 200
    assert response.get_json()["verdict"] == "unknown"


@pytest.mark.parametrize("path", ADMIN_READS)
def test_feed_key_on_admin_reads_is_403(app, client, path):
    key = create_key(app, "vendor-a", "feed")
    error = assert_error(client.get(path, headers=bearer(key)), 403, "forbidden")
    assert "admin" in error["message"]


def test_feed_key_cannot_override_and_writes_nothing(app, client, redis_client):
    key = create_key(app, "vendor-a", "feed")
    before = redis_state(redis_client)
    response = client.put(f"/v1/admin/numbers/{E164}/override", headers=bearer(key),
                          json={"verdict": "allow", "reason": "bank"})
    assert_error(response, 403, "forbidden")
    assert_error(client.delete(f"/v1/admin/numbers/{E164}/override", headers=bearer(key)), 403, "forbidden")
    assert_error(client.post("/v1/admin/disputes/abc/resolve", headers=bearer(key),
                             json={"override": None, "note": "x"}), 403, "forbidden")
    assert redis_state(redis_client) == before


def test_admin_key_may_do_everything(app, client):
    key = create_key(app, "ops", "admin")
    for path in ["/v1/feed", "/v1/feed/export", f"/v1/numbers/{E164}", *ADMIN_READS]:
        assert client.get(path, headers=bearer(key)).status_code == 200, path
    response = client.put(f"/v1/admin/numbers/{E164}/override", headers=bearer(key),
                          json={"verdict": "allow", "reason": "bank"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/feed", "/v1/feed/export", *ADMIN_READS])
def test_a_device_token_is_not_a_key(client, device, path):
    assert_error(client.get(path, headers=device), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/v1/feed", "/v1/feed/export", *ADMIN_READS])
def test_no_credential_is_401(client, path):
    assert_error(client.get(path), 401, "unauthorized")


@pytest.mark.parametrize("header", [
    "Bearer cmk_not-a-real-key",
    "Bearer cmk_",
    "Basic dXNlcjpwYXNz",
    "Bearer",
])
def test_a_bogus_key_is_401(app, client, header):
    create_key(app, "vendor-a")
    assert_error(client.get("/v1/feed", headers={"Authorization": header}), 401, "unauthorized")


def test_a_key_of_another_secret_is_refused(app, client, store):
    key = create_key(app, "vendor-a")
    store.secret = b"another secret of at least 32 characters"
    assert_error(client.get("/v1/feed", headers=bearer(key)), 401, "unauthorized")


def test_an_api_key_cannot_report_as_a_device(app, client):
    key = create_key(app, "ops", "admin")
    response = client.post("/v1/reports", headers=bearer(key), json={"number": E164, "tag": "loan"})
    assert_error(response, 401, "unauthorized")


def test_a_revoked_key_is_refused_by_every_worker_at_once(config, app, client):
    other = create_app(config).test_client()
    key = create_key(app, "ops", "admin")
    override = {"verdict": "block", "reason": "fraud ring"}
    assert other.put(f"/v1/admin/numbers/{E164}/override", headers=bearer(key), json=override).status_code == 200
    assert other.get("/v1/admin/audit", headers=bearer(key)).status_code == 200
    assert cli(app, "keys", "revoke", "ops").exit_code == 0
    assert_error(other.put(f"/v1/admin/numbers/{E164}/override", headers=bearer(key), json=override), 401,
                 "unauthorized")
    assert_error(other.delete(f"/v1/admin/numbers/{E164}/override", headers=bearer(key)), 401, "unauthorized")
    assert_error(other.get("/v1/admin/audit", headers=bearer(key)), 401, "unauthorized")
    assert_error(other.get("/v1/feed", headers=bearer(key)), 401, "unauthorized")
