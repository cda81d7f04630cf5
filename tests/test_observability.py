"""Request ids, JSON logs, /metrics and /readyz."""
from __future__ import annotations

import json
import logging

import pytest

from blocklist import logs, publish
from blocklist.web import create_app, observability
from tests.support import assert_error

E164 = "+8613800138000"


def test_every_answer_carries_a_request_id_and_keeps_a_sane_one_given(client):
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32 and generated != client.get("/healthz").headers["X-Request-Id"]
    assert client.get("/healthz", headers={"X-Request-Id": "lb-42.a"}).headers["X-Request-Id"] == "lb-42.a"
    replaced = client.get("/healthz", headers={"X-Request-Id": "<script>" * 3}).headers["X-Request-Id"]
    assert replaced != "<script>" * 3 and len(replaced) == 32


def test_request_log_lines_are_json_with_the_route_and_never_the_number_or_token(client, device, caplog):
    caplog.set_level(logging.INFO, logger="callmark.access")
    response = client.get(f"/v1/numbers/{E164}", headers={**device, "X-Request-Id": "trace-1"})
    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "callmark.access"]
    logs.RequestIdFilter().filter(record)  # outside the request: the id was set on the way
    line = json.loads(logs.json_formatter().format(record))
    assert line["route"] == "/v1/numbers/<path:number>" and line["status"] == 200 and line["method"] == "GET"
    assert line["level"] == "INFO" and line["logger"] == "callmark.access" and "ms" in line
    text = logs.json_formatter().format(record)
    token = device["Authorization"].split()[1]
    assert "13800138000" not in text and token not in text and token.split(".")[0] not in text


def test_a_log_line_inside_a_request_names_its_request_id(app):
    with app.test_request_context("/healthz"):
        app.preprocess_request()
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "something", None, None)
        logs.RequestIdFilter().filter(record)
        assert json.loads(logs.json_formatter().format(record))["request_id"] == record.request_id
        assert record.request_id


def metrics_text(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}}")


def test_metrics_count_requests_by_route_and_status_without_numbers(client, device):
    before = metrics_text(client)
    route = "/v1/numbers/<path:number>"
    try:
        start = sample(before, "callmark_http_requests_total", route=route, method="GET", status="200")
    except AssertionError:
        start = 0.0
    for _ in range(3):
        client.get(f"/v1/numbers/{E164}", headers=device)
    client.get("/v1/numbers/not-a-number", headers=device)
    text = metrics_text(client)
    assert sample(text, "callmark_http_requests_total", route=route, method="GET", status="200") == start + 3
    assert sample(text, "callmark_http_requests_total", route=route, method="GET", status="400") >= 1
    assert sample(text, "callmark_http_request_duration_seconds_count", route=route, method="GET", status="200") >= 3
    assert sample(text, "callmark_http_request_duration_seconds_count", route=route, method="GET", status="400") >= 1
    assert "13800138000" not in text


def test_metrics_count_reports_by_outcome(client, device):
    def counts():
        text = metrics_text(client)
        return {outcome: _or_zero(text, outcome) for outcome in ("accepted", "duplicate", "rejected")}

    before = counts()
    assert client.post("/v1/reports", json={"number": E164, "tag": "loan"}, headers=device).status_code == 201
    assert client.post("/v1/reports", json={"number": E164, "tag": "loan"}, headers=device).status_code == 201
    assert client.post("/v1/reports", json={"number": "12", "tag": "loan"}, headers=device).status_code == 400
    after = counts()
    assert {k: after[k] - before[k] for k in after} == {"accepted": 1, "duplicate": 1, "rejected": 1}


def _or_zero(text: str, outcome: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("callmark_reports_total{") and f'outcome="{outcome}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_show_list_sizes_and_versions_after_a_publish(client, store, signer, device):
    for _ in range(3):
        headers = {"Authorization": f"Bearer {client.post('/v1/devices').get_json()['token']}"}
        client.post("/v1/reports", json={"number": E164, "tag": "fraud"}, headers=headers)
    publish.publish(store, signer)
    text = metrics_text(client)
    assert sample(text, "callmark_list_size", list="spam") == 1
    assert sample(text, "callmark_list_version", list="fraud") == 1
    assert sample(text, "callmark_publish_duration_seconds_count", list="spam") >= 1


def test_readyz_waits_for_the_lists_and_then_answers_ready(client, store, signer):
    response = client.get("/readyz")
    error = assert_error(response, 503, "not_ready")
    assert error["details"]["checks"]["redis"] == "ok"
    assert error["details"]["checks"]["lists"].startswith("not yet published: spam")
    publish.publish(store, signer)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"redis": "ok", "signing_key": "ok", "lists": "ok"}}


def test_readyz_and_healthz_say_when_redis_does_not_answer(config):
    config.redis_url, config.redis_cluster = "redis://127.0.0.1:1/0", False
    config.redis_timeout = 0.2
    client = create_app(config).test_client()
    assert_error(client.get("/healthz"), 503, "store_unavailable")
    error = assert_error(client.get("/readyz"), 503, "not_ready")
    assert error["details"]["checks"]["redis"] == "not answering"


@pytest.mark.parametrize("value", ["xml", "JSONL"])
def test_an_unknown_log_format_is_refused_at_start(config, value):
    from blocklist.errors import ConfigError

    config.log_format = value.lower()
    with pytest.raises(ConfigError):
        create_app(config)
