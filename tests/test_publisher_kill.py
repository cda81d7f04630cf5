"""A publisher killed at any point (kill -9 of its process) leaves the last good version
served, and the next publisher continues once the dead one's lock has expired."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from blocklist import publish
from blocklist.reputation import Vote, cast_votes
from blocklist.web import create_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_SECONDS = 3
CAPACITY = 2_000_000  # big filters and
BASE, NEW = 20_000, 2_000  # enough numbers that a publish takes long enough to be killed inside


@pytest.fixture
def big(config):
    config.list_min_capacity = CAPACITY
    config.publish_lock_seconds = LOCK_SECONDS
    return create_app(config)


def spam(store, numbers):
    cast_votes(store, [Vote(number=n, tag="fraud", voter=f"v{i:07d}", at=store.clock()) for n in numbers
                       for i in range(3)])


def publisher(config, secret_key) -> subprocess.Popen:
    """`flask lists publish` in a process of its own, on the same Redis, data folder and keys."""
    env = dict(os.environ, REDIS_URL=config.redis_url, CALLMARK_SECRET_KEY=secret_key,
               CALLMARK_DATA_DIR=config.data_dir, CALLMARK_PROFILE="development",
               CALLMARK_LIST_MIN_CAPACITY=str(CAPACITY), CALLMARK_PUBLISH_LOCK_SECONDS=str(LOCK_SECONDS),
               CALLMARK_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "lists", "publish"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def served(client, name="spam") -> tuple[int, int]:
    """The served manifest's version, after checking the snapshot against it."""
    manifest = client.get(f"/v1/lists/{name}/manifest").get_json()["manifest"]
    snapshot = client.get(f"/v1/lists/{name}/snapshot?version={manifest['version']}")
    assert snapshot.status_code == 200
    assert hashlib.sha256(snapshot.data).hexdigest() == manifest["sha256"]
    return manifest["version"], manifest["count"]


def test_a_killed_publisher_leaves_the_last_version_served_and_the_next_one_continues(big, config, secret_key):
    store, client = big.extensions["callmark"], big.test_client()
    signer = big.extensions["callmark.signing"][0]
    rng = random.Random(5)
    spam(store, [f"+86138{i:08d}" for i in range(BASE)])
    publish.publish(store, signer)
    listed, killed_holding_the_lock = BASE, 0
    for round_ in range(5):
        before = served(client)
        new = [f"+86139{round_:02d}{i:06d}" for i in range(NEW)]
        spam(store, new)
        proc = publisher(config, secret_key)
        deadline = time.monotonic() + 30
        while proc.poll() is None and not store.redis.exists(store.keys.publish_lock()) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.15))  # somewhere inside the publish (a few tenths of a second here)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_holding_the_lock += bool(store.redis.exists(store.keys.publish_lock()))
        version, count = served(client)
        assert (version, count) in (before, (before[0] + 1, listed + NEW))  # the old version, or the whole new one
        results = publish.publish(store, signer, wait=LOCK_SECONDS + 5)  # waits out a dead publisher's lock
        assert results is not None
        listed += NEW
        version, count = served(client)
        assert count == listed and version in (before[0] + 1, before[0] + 2)
        assert store.redis.smembers(store.keys.list_members("spam")) >= set(new)
    assert killed_holding_the_lock >= 2  # kills landed inside publishes, not only before or after
