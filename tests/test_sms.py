"""The SMS senders: the webhook against a real local HTTP server (answers, timeouts, refusals,
retries), the development outbox, production without a gateway, and logs without numbers."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from blocklist import sms
from blocklist.config import Config
from blocklist.errors import ConfigError, SmsFailed, SmsUnavailable
from blocklist.web.errors import status_of

NUMBER = "+8613800138000"
TEXT = "CallMark code 402917"
SECRET = "s" * 32
START = 1793145600  # 2026-10-28T00:00:00Z


class Gateway:
    """A real HTTP server on 127.0.0.1 playing an SMS gateway: each request takes the next
    scripted answer (a status, or ("sleep", seconds) before a 200) and is recorded."""

    def __init__(self) -> None:
        self.script: list = []
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateway.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = gateway.script.pop(0) if gateway.script else 200
                if isinstance(answer, tuple):
                    time.sleep(answer[1])
                    answer = 200
                try:
                    self.send_response(answer)
                    if answer in (301, 302, 307, 308):
                        self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting: that is the point of the test

            def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Gateway":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the local server is reached directly
    with Gateway() as server:
        yield server


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("callmark_sms_sent_total", {"outcome": outcome}) or 0.0


def webhook(tmp_path, url: str, **settings) -> sms.WebhookSender:
    """The sender `sender(config)` builds for a gateway at `url`, without the backoff's sleeps."""
    built = sms.sender(Config(data_dir=str(tmp_path), sms_webhook_url=url, **settings))
    assert isinstance(built, sms.WebhookSender)
    return dataclasses.replace(built, backoff=0)


def test_webhook_posts_the_json_body_with_the_bearer_token(gateway, tmp_path):
    sent = counted("sent")
    webhook(tmp_path, gateway.url, sms_webhook_token="gw-token").send(NUMBER, TEXT)
    [request] = gateway.requests
    assert request["path"] == "/sms"
    assert json.loads(request["body"]) == {"to": NUMBER, "text": TEXT}
    assert request["headers"]["Authorization"] == "Bearer gw-token"
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert counted("sent") == sent + 1


def test_webhook_without_a_token_sends_no_authorization(gateway, tmp_path):
    webhook(tmp_path, gateway.url).send(NUMBER, "短信 code 1")
    [request] = gateway.requests
    assert "Authorization" not in request["headers"]
    assert json.loads(request["body"])["text"] == "短信 code 1"


def test_gateway_timing_out_is_retried_then_fails(gateway, tmp_path):
    gateway.script = [("sleep", 1.5), ("sleep", 1.5)]
    retried, failed = counted("retried"), counted("failed")
    sender = webhook(tmp_path, gateway.url, sms_timeout=0.2, sms_retries=1)
    began = time.monotonic()
    with pytest.raises(SmsFailed) as raised:
        sender.send(NUMBER, TEXT)
    assert time.monotonic() - began < 1.2  # each attempt gave up after its timeout
    assert raised.value.code == "sms_failed" and status_of(raised.value) == 503
    assert len(gateway.requests) == 2
    assert (counted("retried"), counted("failed")) == (retried + 1, failed + 1)


def test_a_5xx_is_retried_and_the_retry_succeeds(gateway, tmp_path):
    gateway.script = [503, 200]
    retried, sent = counted("retried"), counted("sent")
    webhook(tmp_path, gateway.url, sms_retries=2).send(NUMBER, TEXT)
    assert len(gateway.requests) == 2
    assert (counted("retried"), counted("sent")) == (retried + 1, sent + 1)


def test_a_gateway_failing_every_attempt_fails_after_the_retries(gateway, tmp_path):
    gateway.script = [500, 502, 500, 200]
    with pytest.raises(SmsFailed, match="3 attempts"):
        webhook(tmp_path, gateway.url, sms_retries=2).send(NUMBER, TEXT)
    assert len(gateway.requests) == 3


def test_a_4xx_is_not_retried(gateway, tmp_path):
    gateway.script = [400, 200]
    failed = counted("failed")
    with pytest.raises(SmsFailed, match="refused"):
        webhook(tmp_path, gateway.url, sms_retries=2).send(NUMBER, TEXT)
    assert len(gateway.requests) == 1
    assert counted("failed") == failed + 1


def test_a_redirect_is_not_followed(gateway, tmp_path):
    gateway.script = [302, 200]
    with pytest.raises(SmsFailed):
        webhook(tmp_path, gateway.url).send(NUMBER, TEXT)
    assert [request["path"] for request in gateway.requests] == ["/sms"]


def test_a_refused_connection_is_retried_after_a_doubling_backoff(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pauses: list[float] = []
    sender = sms.WebhookSender(f"http://127.0.0.1:{port}/sms", timeout=1, retries=2, sleep=pauses.append)
    with pytest.raises(SmsFailed):
        sender.send(NUMBER, TEXT)
    assert pauses == [sms.RETRY_BACKOFF, 2 * sms.RETRY_BACKOFF]


def test_the_webhook_must_be_http(tmp_path):
    with pytest.raises(ConfigError):
        sms.sender(Config(data_dir=str(tmp_path), sms_webhook_url="file:///etc/passwd"))


def test_development_appends_to_the_outbox(tmp_path):
    outbox = tmp_path / "sms-outbox.jsonl"
    sender = sms.sender(Config(data_dir=str(tmp_path), clock=lambda: START))
    sender.send(NUMBER, TEXT)
    sender.send("+12025550143", "验证码 123456")
    lines = outbox.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"to": NUMBER, "text": TEXT, "at": "2026-10-28T00:00:00Z"},
        {"to": "+12025550143", "text": "验证码 123456", "at": "2026-10-28T00:00:00Z"},
    ]
    assert stat.S_IMODE(os.stat(outbox).st_mode) == 0o600


def test_concurrent_outbox_lines_never_interleave(tmp_path):
    sender = sms.sender(Config(data_dir=str(tmp_path)))
    text = "x" * 3000

    def send_many(worker: int) -> None:
        for i in range(50):
            sender.send(f"+1202555{worker:02d}{i:02d}", text)

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "sms-outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["text"] == text for line in lines)


def test_production_without_a_gateway_is_unavailable(tmp_path):
    unavailable = counted("unavailable")
    sender = sms.sender(Config(profile="production", secret_key=SECRET, data_dir=str(tmp_path)))
    with pytest.raises(SmsUnavailable) as raised:
        sender.send(NUMBER, TEXT)
    assert raised.value.code == "sms_unavailable" and status_of(raised.value) == 503
    assert not (tmp_path / "sms-outbox.jsonl").exists()
    assert counted("unavailable") == unavailable + 1


def test_production_with_a_gateway_uses_it(gateway, tmp_path):
    config = Config(profile="production", secret_key=SECRET, data_dir=str(tmp_path), sms_webhook_url=gateway.url)
    sms.sender(config).send(NUMBER, TEXT)
    assert len(gateway.requests) == 1


def test_no_log_record_holds_the_number_or_the_text(gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    gateway.script = [503, 200, 400, ("sleep", 1.0), ("sleep", 1.0)]
    webhook(tmp_path, gateway.url, sms_retries=1).send(NUMBER, TEXT)  # a retry, then sent
    with pytest.raises(SmsFailed):
        webhook(tmp_path, gateway.url).send(NUMBER, TEXT)  # refused
    with pytest.raises(SmsFailed):
        webhook(tmp_path, gateway.url, sms_timeout=0.2, sms_retries=1).send(NUMBER, TEXT)  # timeouts
    sms.sender(Config(data_dir=str(tmp_path))).send(NUMBER, TEXT)
    with pytest.raises(SmsUnavailable):
        sms.sender(Config(profile="production", secret_key=SECRET, data_dir=str(tmp_path))).send(NUMBER, TEXT)
    assert len(caplog.records) >= 8  # every outcome was logged ...
    national = NUMBER[3:]
    for record in caplog.records:  # ... and none with the number (in any form) or the text
        shown = " ".join([record.getMessage(), repr(record.args), record.exc_text or "", repr(record.__dict__)])
        assert national not in shown and TEXT not in shown and "402917" not in shown
