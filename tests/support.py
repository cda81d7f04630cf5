"""Helpers shared by the tests."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from werkzeug.serving import make_server


SMALL_CAPACITY = 1000  # the tests' list capacity: lists this small publish in milliseconds
RATE_LIMIT_KEYS = "cm:rl:"  # counters that every request moves, rejected ones included


def redis_state(r) -> dict:
    """Every key with its type and content (but rate-limit counters), to prove a request wrote nothing."""
    state = {}
    for key in r.scan_iter(count=1000):
        if key.startswith(RATE_LIMIT_KEYS):
            continue
        kind = r.type(key)
        value = {
            "hash": lambda: r.hgetall(key),
            "string": lambda: r.get(key),
            "zset": lambda: r.zrange(key, 0, -1, withscores=True),
            "stream": lambda: r.xrange(key),
            "set": lambda: sorted(r.smembers(key)),
            "list": lambda: r.lrange(key, 0, -1),
        }[kind]()
        state[key] = (kind, value)
    return state


def assert_error(response, status: int, *codes: str) -> dict:
    """The answer has `status` and the one error shape, with one of `codes`; returns the error."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] in codes
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


@contextmanager
def serve(wsgi_app) -> Iterator[str]:
    """Run a WSGI app on a free local port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
