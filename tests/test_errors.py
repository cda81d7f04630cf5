"""Redis down: every route that needs the store answers 503 store_unavailable and writes nothing."""
from __future__ import annotations

import time

import pytest

from blocklist.config import Config
from blocklist.web import create_app
from tests.support import RATE_LIMIT_KEYS, assert_error

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
UNKNOWN_DEVICE_TOKEN = "0123456789abcdef." + "A" * 43  # well-formed; its device does not exist


@pytest.fixture
def down_client(secret_key, tmp_path, clock, redis_client):
    app = create_app(Config(redis_url=DEAD_REDIS, profile="development", secret_key=secret_key,
                            data_dir=str(tmp_path), redis_timeout=0.5, clock=clock))
    return app.test_client()


@pytest.fixture
def real_token(client) -> str:
    """A token registered on the real Redis, valid under the shared secret."""
    return client.post("/v1/devices").get_json()["token"]


REQUESTS = [
    pytest.param("get", "/healthz", None, id="healthz"),
    pytest.param("post", "/v1/devices", None, id="register"),
    pytest.param("post", "/v1/reports", {"number": "13800138000", "tag": "loan"}, id="report"),
    pytest.param("post", "/v1/reports", {"number": "13800138000", "tag": "loan", "report_id": "r1",
                                         "note": "hi", "call": {"answered": True}}, id="report-with-details"),
    pytest.param("post", "/v1/reports/batch", {"reports": [{"number": "13800138000", "tag": "loan"}]}, id="batch"),
    pytest.param("get", "/v1/numbers/13800138000", None, id="lookup"),
    pytest.param("delete", "/v1/reports/13800138000", None, id="withdraw"),
]


@pytest.mark.parametrize("method, path, body", REQUESTS)
def test_store_down_answers_503_with_the_error_shape(down_client, redis_client, method, path, body):
    before = redis_client.dbsize()
    response = getattr(down_client, method)(path, json=body,
                                            headers={"Authorization": f"Bearer {UNKNOWN_DEVICE_TOKEN}"})
    assert_error(response, 503, "store_unavailable")
    assert redis_client.dbsize() == before == 0


@pytest.mark.parametrize("method, path, body", REQUESTS)
def test_store_down_is_503_even_for_a_token_valid_on_the_real_store(down_client, redis_client, real_token,
                                                                     method, path, body):
    keys = sorted(redis_client.scan_iter())
    response = getattr(down_client, method)(path, json=body, headers={"Authorization": f"Bearer {real_token}"})
    assert_error(response, 503, "store_unavailable")
    assert sorted(redis_client.scan_iter()) == keys
    assert len([k for k in keys if not k.startswith(RATE_LIMIT_KEYS)]) == 1  # only the device registered


def test_store_down_answer_says_when_to_retry(down_client):
    response = down_client.get("/healthz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


def test_store_down_fails_fast(down_client):
    start = time.monotonic()
    down_client.post("/v1/reports", json={"number": "13800138000", "tag": "loan"},
                     headers={"Authorization": f"Bearer {UNKNOWN_DEVICE_TOKEN}"})
    assert time.monotonic() - start < 5


def test_tags_need_no_store(down_client):
    response = down_client.get("/v1/tags")
    assert response.status_code == 200
    assert {t["code"] for t in response.get_json()["tags"]} >= {"fraud", "loan", "safe", "delivery"}


def test_healthz_recovers_on_a_working_store(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}

