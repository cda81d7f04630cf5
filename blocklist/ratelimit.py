"""Rate limits on the same Redis: shared by all workers, kept across restarts.

flask-limiter owns the storage and the counting strategy (fixed windows, from the `limits`
library); this module says which routes each limit guards and whose requests it counts,
and asks flask-limiter's rate limiter once per request. (Its route decorators evaluate a
route's limits twice per request, which cost a third of a lookup's throughput.)
The limits themselves are settings: blocklist/config.py, CALLMARK_RATE_LIMIT_*.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from .api.auth import bearer_token
from .keys import PREFIX


def _caller() -> str:
    """The bearer credential, keyed-hashed: limits per token or key, never storing it."""
    token = bearer_token()
    if not token:
        return f"addr:{request.remote_addr}"
    secret = current_app.extensions["callmark"].secret
    return "cred:" + hmac.new(secret, f"ratelimit:{token}".encode(), hashlib.sha256).hexdigest()[:24]


def _address() -> str:
    return f"addr:{request.remote_addr}"


# endpoint -> (limit name, whose requests count); routes with the same name share one budget
ROUTE_LIMITS = {
    "api.register_device": ("registration", _address),
    "api.post_report": ("reports", _caller),
    "api.post_batch": ("reports", _caller),
    "api.delete_report": ("reports", _caller),
    "api.open_dispute": ("reports", _caller),
    "api.get_number": ("lookups", _caller),
    "api.lookup_prefix": ("lookups", _caller),
    "api.get_feed": ("feed", _caller),
    "api.export_feed": ("feed", _caller),
}


class RateLimited(TooManyRequests):
    """429, with the limit that was hit and when its window resets."""

    def __init__(self, item: RateLimitItem, reset_at: float):
        super().__init__(f"{item.amount} per {item.multiples} {item.GRANULARITY.name}")
        self.headers = {
            # Redis TTLs round up, so the reset can look a second past the window: clamp to it.
            "Retry-After": str(min(item.get_expiry(), max(1, math.ceil(reset_at - time.time())))),
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at)),
        }


def init_app(app: Flask, storage_uri: str) -> Limiter:
    config = app.config["CALLMARK"]
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": config.redis_timeout,
                                               "key_prefix": f"{PREFIX}:rl"}
    limiter = Limiter(key_func=_caller, app=app, strategy="fixed-window", auto_check=False)
    app.extensions["callmark.limiter"] = limiter
    limits = {name: parse_many(value) for name, value in config.rate_limits.items()}

    @app.before_request
    def check_rate_limit() -> None:
        guarded = ROUTE_LIMITS.get(request.endpoint or "")
        if guarded is None:
            return
        name, whose = guarded
        caller = whose()
        for item in limits[name]:
            if not limiter.limiter.hit(item, name, caller):
                raise RateLimited(item, limiter.limiter.get_window_stats(item, name, caller).reset_time)

    return limiter
