"""Background jobs of `python app.py`, in one process beside the gunicorn workers."""
from __future__ import annotations

import logging
import signal
import threading
import time

import redis

from .. import complaints, logs, monthly, publish, reputation, trust
from ..config import Config
from ..errors import PublishError
from ..service import open_keyring, open_store

log = logging.getLogger(__name__)


def run() -> None:
    config = Config.from_env()
    config.validate()
    logs.configure_logging(config.log_level, config.log_format, config.profile)
    store, _ = open_store(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    keyring = open_keyring(store)  # the key state is re-read from Redis at every publish
    jobs = []  # (interval, job); a publish sweeps first, so it also stands in for a sweep
    if config.publish_interval:
        jobs.append((config.publish_interval, lambda: _publish(store, keyring)))
    if config.sweep_interval:
        jobs.append((config.sweep_interval, lambda: _sweep(store)))
    due = {i: time.monotonic() + (0 if i == 0 else interval) for i, (interval, _) in enumerate(jobs)}
    while jobs and not stop.wait(max(0.0, min(due.values()) - time.monotonic())):
        for i, (interval, job) in enumerate(jobs):
            if due[i] <= time.monotonic():
                due[i] = time.monotonic() + interval
                try:
                    job()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("scheduled job skipped, Redis unavailable: %s", exc.__class__.__name__)
                except PublishError as exc:
                    log.error("scheduled publish failed: %s", exc)


def _sweep(store) -> None:
    changed = reputation.sweep(store)
    if changed:
        log.info("decay sweep: %d numbers changed verdict", changed)
    reweighed = trust.review(store)
    if reweighed:
        log.info("trust review: %d devices changed weight", reweighed)
    expired = complaints.sweep(store)
    if expired:
        log.info("complaint retention: %d complaints deleted", expired)
    monthly.freeze_last_month(store)


def _publish(store, keyring) -> None:
    """Publish with the key the service signs with now, as Redis says."""
    results = publish.publish(store, keyring, wait=0)
    if results is None:
        log.info("scheduled publish skipped: another publisher holds the lock")
        return
    for result in results:
        if result.new_version:
            log.info("published %s", result.line())


if __name__ == "__main__":
    run()
