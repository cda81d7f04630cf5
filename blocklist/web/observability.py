"""Request ids, one log line per request, request metrics and the `/metrics` route.

Each request's id is the caller's `X-Request-Id` when it is a sane token, else a new one,
echoed in the response and named by every log line of the request (blocklist/logs.py). A
request's log line names its route pattern (`/v1/numbers/<path:number>`), never its path,
so no phone number, token or key reaches a log.

`/metrics` adds up every process's metrics (blocklist/metrics.py); list sizes and versions
are read from Redis when it is scraped, so they are right whichever process published.
"""
from __future__ import annotations

import logging
import os
import re
import time
import uuid

import redis
from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from .. import logs
from ..config import MULTIPROC_ENV
from ..lists import PUBLISHED
from ..metrics import LATENCY, REDIS_ERRORS, REQUESTS
from .auth import SCRAPER
from .routes import Doc, route, serve

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # used with fullmatch: "$" would let a newline through

access = logging.getLogger("callmark.access")


def init_app(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_id_token = logs.request_id.set(g.request_id)  # every log line of the request names it
        g.started = time.perf_counter()

    @app.teardown_request
    def forget(_exc) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id.reset(token)

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

    serve(app, metrics)


@route(None, "GET", "/metrics", auth=SCRAPER, doc=Doc(
    "Prometheus metrics (text format); with CALLMARK_METRICS_TOKEN set, only for that bearer token", 200,
    content={"text/plain": {"schema": {"type": "string"}}}, errors=(401,), tags=("operations",)))
def metrics() -> Response:
    """Prometheus text format: this process's (or every worker's) metrics and the lists."""
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
