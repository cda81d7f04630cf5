"""Background jobs of `python app.py`, in one process beside the gunicorn workers."""
from __future__ import annotations

import logging
import signal
import threading

import redis

from . import create_app, reputation

log = logging.getLogger("blocklist.scheduler")


def run() -> None:
    app = create_app()
    store = app.extensions["callmark"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    interval = store.config.sweep_interval
    while not stop.wait(interval):
        try:
            changed = reputation.sweep(store)
            if changed:
                log.info("decay sweep: %d numbers changed verdict", changed)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("decay sweep skipped, Redis unavailable: %s", exc.__class__.__name__)


if __name__ == "__main__":
    run()
