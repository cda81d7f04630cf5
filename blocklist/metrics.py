"""Prometheus metrics (prometheus-client), counted wherever the work happens.

Under `python app.py` every gunicorn worker and the scheduler write to
PROMETHEUS_MULTIPROC_DIR (set by the launcher) and `/metrics` (blocklist/web/observability.py)
adds them up; anywhere else the process's own registry is served.
"""
from __future__ import annotations

import os

from prometheus_client import Counter, Histogram, multiprocess

from .config import MULTIPROC_ENV

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
SMS = Counter("callmark_sms_sent_total",
              "Text messages by outcome: sent (the gateway took it), retried (an attempt failed and was "
              "tried again), failed (not sent), outbox (development file), unavailable (no gateway)",
              ["outcome"])


def count_report(duplicate: bool = False, error: str | None = None) -> None:
    """One report's outcome: accepted, duplicate, or rejected with the error code as reason."""
    if error:
        REPORTS.labels("rejected", error).inc()
    else:
        REPORTS.labels("duplicate" if duplicate else "accepted", "").inc()


def child_exit(server, worker) -> None:
    """gunicorn hook: a dead worker's live gauges leave the multiprocess files."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)
