"""Rate limits on the same Redis: shared by all workers, kept across restarts.

flask-limiter owns the storage and the counting strategy (fixed windows, from the `limits`
library); this module says which routes each limit guards and whose requests it counts,
and asks flask-limiter's rate limiter once per request. (Its route decorators evaluate a
route's limits twice per request, which cost a third of a lookup's throughput.)

The lookup is the hottest route, and a Redis round trip of its own for the counter cost it
a quarter of its throughput. So on the routes in SHARED_ROUND_TRIP the counter rides in the
route's own round trip: the route runs its read through `counted`, which queues the very
call `limits` makes for a fixed-window hit (its script, its key) beside the read. A request
that ends before that (a 4xx) is counted after it, the usual way.

The limits themselves are settings: blocklist/config.py, CALLMARK_RATE_LIMIT_*.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import time

import logging
from typing import Any, Callable

import redis
from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from .api.auth import bearer_token
from .keys import PREFIX

log = logging.getLogger(__name__)


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
    "api.post_call": ("calls", _caller),
    "api.get_number": ("lookups", _caller),
    "api.lookup_prefix": ("lookups", _caller),
    "api.get_feed": ("feed", _caller),
    "api.export_feed": ("feed", _caller),
}
# Routes that count their request in their own Redis round trip, through `counted`.
SHARED_ROUND_TRIP = {"api.get_number"}


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


class Guard:
    """The configured limits, counted with flask-limiter's rate limiter."""

    def __init__(self, limiter: Limiter, limits: dict[str, list[RateLimitItem]]):
        self.limiter = limiter
        self.limits = limits
        strategy = limiter.limiter
        # Sharing a round trip means making the fixed-window hit's own call; with another
        # strategy or storage every route counts the usual way.
        self.shares_round_trips = (type(strategy) is FixedWindowRateLimiter
                                   and isinstance(strategy.storage, RedisStorage))

    def hit(self, name: str, caller: str) -> None:
        """Count one request against every limit called `name`; raise RateLimited past one."""
        for item in self.limits[name]:
            if not self.limiter.limiter.hit(item, name, caller):
                self.refuse(item, name, caller)

    def refuse(self, item: RateLimitItem, name: str, caller: str):
        reset_at = self.limiter.limiter.get_window_stats(item, name, caller).reset_time
        raise RateLimited(item, reset_at)

    def counted(self, store, fill: Callable[[Any], None]) -> Any:
        """Run the one command `fill(pipe)` queues in a `store.pipelined` round trip, with this
        request's pending counters beside it (what FixedWindowRateLimiter.hit would send:
        limits' increment script on its key); raise RateLimited past a limit, else return the
        command's reply."""
        pending = g.pop("callmark_pending_limit", None)
        if pending is None:  # counted already, in before_request
            return store.pipelined(fill)[0]
        name, caller = pending
        storage = self.limiter.limiter.storage
        store.scripts.setdefault(("limits", "incr_expire"), storage.lua_incr_expire)  # reloaded on NOSCRIPT

        def queue(pipe) -> None:
            fill(pipe)
            for item in self.limits[name]:
                store.evalsha(pipe, storage.lua_incr_expire, [storage.prefixed_key(item.key_for(name, caller))],
                              [item.get_expiry(), 1])

        reply, *counts = store.pipelined(queue)
        for item, count in zip(self.limits[name], counts):
            if int(count) > item.amount:
                self.refuse(item, name, caller)
        return reply


def counted(fill: Callable[[Any], None]) -> Any:
    """`Guard.counted` for the current request: see SHARED_ROUND_TRIP."""
    return current_app.extensions["callmark.ratelimit"].counted(current_app.extensions["callmark"], fill)


def init_app(app: Flask, storage_uri: str) -> Limiter:
    config = app.config["CALLMARK"]
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": config.redis_timeout,
                                               "key_prefix": f"{PREFIX}:rl"}
    limiter = Limiter(key_func=_caller, app=app, strategy="fixed-window", auto_check=False)
    app.extensions["callmark.limiter"] = limiter
    guard = Guard(limiter, {name: parse_many(value) for name, value in config.rate_limits.items()})
    app.extensions["callmark.ratelimit"] = guard

    @app.before_request
    def check_rate_limit() -> None:
        guarded = ROUTE_LIMITS.get(request.endpoint or "")
        if guarded is None:
            return
        name, whose = guarded
        if guard.shares_round_trips and request.endpoint in SHARED_ROUND_TRIP:
            g.callmark_pending_limit = (name, whose())
        else:
            guard.hit(name, whose())

    @app.after_request
    def count_the_rest(response):
        pending = g.pop("callmark_pending_limit", None)
        if pending is not None:  # the route answered before its round trip: count it now
            try:
                for item in guard.limits[pending[0]]:
                    limiter.limiter.hit(item, *pending)
            except redis.RedisError:
                log.warning("a rate-limit counter was not written: Redis did not answer")
        return response

    return limiter
