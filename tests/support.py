"""Helpers shared by the tests."""
from __future__ import annotations


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
