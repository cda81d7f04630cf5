"""Fixtures: a real Redis (REDIS_URL, else the embedded server; with CALLMARK_TEST_CLUSTER=1 a
3-master Redis Cluster started for the run), clean for every test."""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from urllib.parse import urlparse

import pytest
import redis
from redis.cluster import RedisCluster

from blocklist.config import Config
from blocklist.embedded import EmbeddedRedis
from blocklist.web import create_app
from tests.support import SMALL_CAPACITY

START = 1793145600  # 2026-10-28T00:00:00Z: where the injected clock starts
TEST_DB = 15  # used on a REDIS_URL that names no database, so tests never flush db 0
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ftc")


class Clock:
    """A settable clock injected into the app: tests move time instead of sleeping."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float = 0, seconds: float = 0) -> None:
        self.now += days * 86400 + seconds


ON_CLUSTER = os.environ.get("CALLMARK_TEST_CLUSTER") == "1"


@pytest.fixture(scope="session")
def redis_url():
    if ON_CLUSTER:
        from tests.cluster import cluster

        with cluster() as url:
            yield url
        return
    url = os.environ.get("REDIS_URL")
    if url:
        if urlparse(url).path.strip("/") == "" and "db=" not in url:
            url = url.rstrip("/") + f"/{TEST_DB}"
        yield url
        return
    # A short folder: Unix socket paths are limited to about 100 bytes.
    folder = tempfile.mkdtemp(prefix="cm-")
    server = EmbeddedRedis(folder)
    server.start()
    yield f"unix://{server.socket}"
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_client(redis_url):
    if ON_CLUSTER:
        client = RedisCluster.from_url(redis_url, decode_responses=True)
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        yield client
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        client.close()
        return
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return secrets.token_urlsafe(32)  # fresh per run: tests never rely on a fixed secret


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def config(redis_url, redis_client, clock, secret_key, tmp_path) -> Config:
    return Config(redis_url=redis_url, profile="development", secret_key=secret_key,
                  data_dir=str(tmp_path), clock=clock, list_min_capacity=SMALL_CAPACITY, redis_cluster=ON_CLUSTER)


@pytest.fixture
def app(config):
    return create_app(config)


@pytest.fixture
def store(app):
    return app.extensions["callmark"]


@pytest.fixture
def signer(app):
    """The key that signs this app's manifests."""
    return app.extensions["callmark.signing"][0]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def new_device(client):
    """Register a device; return the Authorization headers that act as it."""

    def make() -> dict[str, str]:
        response = client.post("/v1/devices")
        assert response.status_code == 201
        return {"Authorization": f"Bearer {response.get_json()['token']}"}

    return make


@pytest.fixture
def device(new_device) -> dict[str, str]:
    return new_device()


@pytest.fixture
def ftc_dir() -> str:
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data/ftc is not present")
    return SHARED_DATA
