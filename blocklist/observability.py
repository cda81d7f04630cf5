"""Logs, request ids and Prometheus metrics.

Logs are JSON lines on stderr (python-json-logger), one per request plus whatever the code
logs, each with the request id: the caller's `X-Request-Id` when it is a sane token, else a
new one, echoed in the response. A request's log line names its route pattern
(`/v1/numbers/<path:number>`), never its path, so no phone number, token or key reaches a
log. `CALLMARK_LOG_FORMAT=text` gives plain lines for a terminal.

Metrics come from prometheus-client. Under `python app.py` every gunicorn worker and the
scheduler write to PROMETHEUS_MULTIPROC_DIR (set by the launcher) and `/metrics` adds them
up; anywhere else the process's own registry is served. List sizes and versions are read
from Redis when `/metrics` is scraped, so they are right whichever process published.
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import time
import uuid

import redis
from flask import Flask, Response, current_app, g, has_request_context, request
from gunicorn import glogging
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)
from prometheus_client.core import GaugeMetricFamily
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # used with fullmatch: "$" would let a newline through
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("callmark_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram("callmark_http_request_duration_seconds", "Time to answer an HTTP request",
                    ["route", "method", "status"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REPORTS = Counter("callmark_reports_total", "Reports by outcome (accepted, duplicate, rejected) and reason",
                  ["outcome", "reason"])
REDIS_ERRORS = Counter("callmark_redis_errors_total", "Requests that failed because Redis did not answer")
PUBLISH_SECONDS = Histogram("callmark_publish_duration_seconds", "Time to publish one list", ["list"],
                            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
DELTA_BYTES = Histogram("callmark_delta_bytes", "Size of the deltas a publish wrote", ["list"],
                        buckets=(64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304))


def count_report(duplicate: bool = False, error: str | None = None) -> None:
    """One report's outcome: accepted, duplicate, or rejected with the error code as reason."""
    if error:
        REPORTS.labels("rejected", error).inc()
    else:
        REPORTS.labels("duplicate" if duplicate else "accepted", "").inc()


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message, request_id and any extras."""
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def configure_logging(level: str, form: str = "json") -> None:
    """One stderr handler on the root logger (once per process), JSON unless `form` is text."""
    root = logging.getLogger()
    if not any(getattr(h, "_callmark", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        if form == "text":
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(json_formatter())
        handler.addFilter(RequestIdFilter())
        handler._callmark = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's own lines (start, workers, signals) in the same JSON as the service's."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(json_formatter())
            handler.addFilter(RequestIdFilter())


access = logging.getLogger("callmark.access")


def init_app(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        LATENCY.labels(route, request.method, str(response.status_code)).observe(elapsed)
        if response.status_code == 503:
            REDIS_ERRORS.inc()
        response.headers["X-Request-Id"] = g.get("request_id", "")
        access.info("request", extra={"route": route, "method": request.method, "status": response.status_code,
                                      "ms": round(elapsed * 1000, 2)})
        return response

    app.add_url_rule("/metrics", "metrics", metrics)


def _check_scraper() -> None:
    """With CALLMARK_METRICS_TOKEN set, only a scrape that sends it as its bearer token is answered."""
    from .api.auth import bearer_token  # the API imports this module: a late import avoids the cycle
    from .errors import Unauthorized

    expected = current_app.extensions["callmark"].config.metrics_token
    if expected is None:
        return
    given = bearer_token() or ""
    # compare_digest: the time taken says nothing about how much of a guess was right.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("/metrics needs Authorization: Bearer <CALLMARK_METRICS_TOKEN>")


def metrics() -> Response:
    """Prometheus text format: this process's (or every worker's) metrics and the lists."""
    _check_scraper()
    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    lists = CollectorRegistry()
    lists.register(_ListCollector(current_app.extensions["callmark"]))
    return Response(generate_latest(registry) + generate_latest(lists), mimetype=CONTENT_TYPE_LATEST)


class _ListCollector:
    """List sizes and versions, read from Redis at scrape time."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        from .lists import PUBLISHED

        size = GaugeMetricFamily("callmark_list_size", "Numbers (or blocks) in a published list", labels=["list"])
        version = GaugeMetricFamily("callmark_list_version", "Latest published version of a list", labels=["list"])
        try:
            pipe = self.store.redis.pipeline(transaction=False)
            for name in PUBLISHED:
                pipe.hmget(self.store.keys.list_state(name), "count", "version")
            for name, (count, ver) in zip(PUBLISHED, pipe.execute()):
                if ver is not None:
                    size.add_metric([name], float(count or 0))
                    version.add_metric([name], float(ver))
        except redis.RedisError:
            REDIS_ERRORS.inc()
        yield size
        yield version


def child_exit(server, worker) -> None:
    """gunicorn hook: a dead worker's live gauges leave the multiprocess files."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)
