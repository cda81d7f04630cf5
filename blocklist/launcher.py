"""`python app.py`: the embedded Redis (when REDIS_URL is unset), the scheduler, and
gunicorn with several workers, started in that order and stopped in the reverse one.

The launcher owns the embedded server: it starts it once, before gunicorn forks, and hands
its socket to the workers (CALLMARK_REDIS_SOCKET), which connect with a plain client.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile

from flask import Flask
from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT = 30  # seconds gunicorn gives workers to finish in-flight requests
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics() -> None:
    """A fresh folder for the workers' and the scheduler's metrics (prometheus-client's
    multiprocess mode), unless the operator named one; removed again by `serve`."""
    if not os.environ.get(METRICS_ENV):
        os.environ[METRICS_ENV] = tempfile.mkdtemp(prefix="callmark-metrics-")
        os.environ["CALLMARK_OWN_METRICS_DIR"] = "1"


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Each worker builds its own app (and Redis connections) after the fork.
        from app import app

        return app


def serve(app: Flask) -> None:
    from . import observability  # after prepare_metrics: prometheus-client reads the folder at import

    config = app.config["CALLMARK"]
    server = app.extensions["callmark.embedded"]
    if server is not None:
        os.environ["CALLMARK_REDIS_SOCKET"] = server.socket
        if "CALLMARK_PROFILE" not in os.environ:
            os.environ["CALLMARK_PROFILE"] = config.profile
    workers = config.workers or max(2, 2 * multiprocessing.cpu_count())
    scheduler = None
    if config.sweep_interval or config.publish_interval:
        scheduler = subprocess.Popen([sys.executable, "-m", "blocklist.scheduler"], stdin=subprocess.DEVNULL)
    log.info("serving on http://%s:%s with %d workers (%s profile)", config.host, config.port, workers,
             config.profile)
    try:
        _Gunicorn({
            "bind": f"{config.host}:{config.port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": config.threads,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": config.log_level.lower(),
            "proc_name": "callmark",
            "child_exit": observability.child_exit,
            **({"logger_class": observability.GunicornJsonLogger} if config.log_format == "json" else {}),
        }).run()
    finally:
        if scheduler is not None:
            scheduler.terminate()
            scheduler.wait(10)
        if server is not None:
            server.stop()
        # last: until the scheduler has stopped it may still write its metrics there
        if os.environ.get("CALLMARK_OWN_METRICS_DIR") and os.environ.get(METRICS_ENV):
            shutil.rmtree(os.environ[METRICS_ENV], ignore_errors=True)
