"""Text messages (the Do-Not-Call verification codes) to a phone number.

`sender(config)` picks how: the SMS gateway's webhook when CALLMARK_SMS_WEBHOOK_URL is set (an
HTTP POST of `{"to": "<E.164>", "text": "..."}`, the shape any gateway's API can be adapted to);
else, in development, one JSON line per message appended to `<data_dir>/sms-outbox.jsonl`;
else (production) a sender that refuses with errors.SmsUnavailable. Outcomes are counted in
/metrics (`callmark_sms_sent_total`). Nothing here ever logs a number or a text: a log line
says only the outcome, the attempt, and the HTTP status or the exception's class.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Callable
from urllib.parse import urlsplit

from sync.signing import iso

from . import metrics
from .config import Config
from .errors import ConfigError, SmsFailed, SmsUnavailable

OUTBOX_FILE = "sms-outbox.jsonl"  # in the data folder: the development profile's "gateway"
RETRY_BACKOFF = 0.25  # seconds before the first retry, doubled before each next one

log = logging.getLogger(__name__)


class Sender:
    """Sends one text to one E.164 number, or raises errors.SmsFailed / errors.SmsUnavailable."""

    def send(self, to: str, text: str) -> None:
        raise NotImplementedError


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: urllib would resend the POST as a GET without
    its body, and the number must not travel to a host nobody configured."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None


@dataclass(frozen=True)
class WebhookSender(Sender):
    """POSTs the message as JSON to the gateway. A timeout, a connection error or a 5xx is tried
    again `retries` times after a doubling backoff; any other answer than a 2xx fails at once."""

    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 5.0  # seconds per attempt (each socket operation)
    retries: int = 2  # further attempts after the first
    backoff: float = RETRY_BACKOFF
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ConfigError("CALLMARK_SMS_WEBHOOK_URL must be an http:// or https:// URL")

    def send(self, to: str, text: str) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps({"to": to, "text": text}).encode()
        opener = urllib.request.build_opener(_NoRedirect)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                metrics.SMS.labels("retried").inc()
                self.sleep(self.backoff * 2 ** (attempt - 2))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500:
                    metrics.SMS.labels("failed").inc()
                    log.warning("SMS gateway refused the message: HTTP %d (not retried)", exc.code)
                    raise SmsFailed("the SMS gateway refused the message") from None
                reason = f"HTTP {exc.code}"
            except urllib.error.URLError as exc:  # connect or wait for the answer: reason is the OSError
                reason = type(exc.reason).__name__ if isinstance(exc.reason, BaseException) else "URLError"
            except (OSError, HTTPException) as exc:  # a timeout or a reset while reading the answer
                reason = type(exc).__name__
            else:
                metrics.SMS.labels("sent").inc()
                log.info("SMS sent: HTTP %d, attempt %d of %d", status, attempt, attempts)
                return
            log.warning("SMS gateway attempt %d of %d failed: %s", attempt, attempts, reason)
        metrics.SMS.labels("failed").inc()
        log.error("SMS not sent: the gateway failed %d attempts", attempts)
        raise SmsFailed(f"the SMS gateway did not take the message after {attempts} attempts; retry later")


@dataclass(frozen=True)
class OutboxSender(Sender):
    """Development: appends `{"to", "text", "at"}` as one line to a file only its owner can read."""

    path: str
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def send(self, to: str, text: str) -> None:
        line = json.dumps({"to": to, "text": text, "at": iso(self.clock())}, ensure_ascii=False) + "\n"
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # One write of one line with O_APPEND: lines of concurrent workers never interleave.
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        metrics.SMS.labels("outbox").inc()
        log.info("SMS appended to the development outbox %s", self.path)


class UnavailableSender(Sender):
    """Production without a gateway: the service runs, verifications answer 503 sms_unavailable."""

    def send(self, to: str, text: str) -> None:
        metrics.SMS.labels("unavailable").inc()
        log.warning("SMS not sent: no gateway is set (CALLMARK_SMS_WEBHOOK_URL)")
        raise SmsUnavailable("this service cannot send text messages now (no SMS gateway is set up)")


def sender(config: Config) -> Sender:
    """The sender the settings call for (see the module's docstring)."""
    if config.sms_webhook_url:
        return WebhookSender(config.sms_webhook_url, config.sms_webhook_token,
                             timeout=config.sms_timeout, retries=config.sms_retries)
    if config.profile == "development":
        return OutboxSender(os.path.join(config.data_dir, OUTBOX_FILE), config.clock or time.time)
    return UnavailableSender()
