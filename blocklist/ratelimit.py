"""Rate limits (flask-limiter) on the same Redis: shared by all workers, kept across restarts.

The limits themselves are settings (blocklist/config.py, CALLMARK_RATE_LIMIT_*); this
module says which routes each one guards and whose requests it counts.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import Flask, current_app, request
from flask_limiter import Limiter

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


def init_app(app: Flask, storage_uri: str) -> Limiter:
    """A limiter of this app's own (so several apps in one process keep separate storage)."""
    config = app.config["CALLMARK"]
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": config.redis_timeout,
                                               "key_prefix": f"{PREFIX}:rl"}
    # Headers on every answer would cost two more Redis round trips per request; the 429
    # answer carries them (see api/errors.py), which is when a client needs them.
    # auto_check off and one check before each request: flask-limiter would otherwise
    # evaluate a decorated route's limits twice per request (middleware and decorator).
    limiter = Limiter(key_func=_caller, app=app, headers_enabled=False, strategy="fixed-window", auto_check=False)
    app.extensions["callmark.limiter"] = limiter
    for endpoint, (name, key_func) in ROUTE_LIMITS.items():
        # Shared by name: the reports budget covers every report route together, and so on.
        app.view_functions[endpoint] = limiter.shared_limit(config.rate_limits[name], scope=name,
                                                            key_func=key_func)(app.view_functions[endpoint])
    app.before_request(limiter.check)
    return limiter


def exceeded_headers(limiter: Limiter) -> dict[str, str]:
    """Retry-After and X-RateLimit-* for a 429: which limit was hit and when it resets."""
    current = limiter.current_limit
    if current is None:
        return {"Retry-After": "1"}
    reset_at = int(current.reset_at)
    return {
        # Redis TTLs round up, so the reset can look a second past the window: clamp to it.
        "Retry-After": str(min(current.limit.get_expiry(), max(1, math.ceil(current.reset_at - time.time())))),
        "X-RateLimit-Limit": str(current.limit.amount),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset_at),
    }
