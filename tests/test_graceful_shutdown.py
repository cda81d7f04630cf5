"""`python app.py` stopped with SIGTERM finishes the requests in flight before it exits."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

from blocklist import apikeys
from blocklist.reputation import Vote, cast_votes
from tests.processes import free_port, wait_healthy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBERS = 20_000  # an export of these streams for a while: long enough to be in flight
EXPORTS = 6


def test_sigterm_lets_in_flight_exports_finish(config, store, secret_key, tmp_path):
    cast_votes(store, [Vote(number=f"+86138{i:08d}", tag="loan", voter="v0000000", at=store.clock())
                       for i in range(NUMBERS)])
    key = apikeys.create(store, "vendor", "feed")
    port = free_port()
    env = dict(os.environ, REDIS_URL=config.redis_url, CALLMARK_SECRET_KEY=secret_key, PORT=str(port),
               CALLMARK_PROFILE="development", CALLMARK_DATA_DIR=str(tmp_path), CALLMARK_PUBLISH_INTERVAL="0",
               CALLMARK_SWEEP_INTERVAL="0", CALLMARK_LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(port, server)
        results: list = [None] * EXPORTS
        started = [threading.Event() for _ in range(EXPORTS)]

        def export(i: int) -> None:
            request = urllib.request.Request(base + "/v1/feed/export", headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=60) as response:
                started[i].set()
                lines = response.read().decode().splitlines()
            results[i] = (response.status, len(lines), json.loads(lines[-1]))

        threads = [threading.Thread(target=export, args=(i,)) for i in range(EXPORTS)]
        for thread in threads:
            thread.start()
        for event in started:  # every export has its answer's headers: it is in flight
            assert event.wait(30)
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert server.wait(40) == 0
    finally:
        if server.poll() is None:
            server.kill()
    for status, lines, last in results:
        assert status == 200 and lines == NUMBERS + 1 and "next_cursor" in last
