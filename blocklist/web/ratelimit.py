"""Rate limits on the same Redis: shared by all workers, kept across restarts.

flask-limiter owns the storage and the counting strategy (fixed windows, from the `limits`
library); each route declares the limits that guard it (`route(..., limits=REPORTS)`,
blocklist/web/routes.py), this module says whose requests each limit counts and asks
flask-limiter's rate limiter once per request. (Its route decorators evaluate a route's
limits twice per request, which cost a third of a lookup's throughput.)

The lookup is the hottest route, and a Redis round trip of its own for the counter cost it
a quarter of its throughput. So on the routes declared counting=SHARED_ROUND_TRIP the
counter rides in the route's own round trip: the route runs its read through `counted`,
which queues the very call `limits` makes for a fixed-window hit (its script, its key)
beside the read. A request that ends before that (a 4xx) is counted after it, the usual way.

A route may be guarded by several limits, each counting someone else: the device token,
the client address, the client's network (CALLMARK_NETWORK_PREFIX_V4/_V6), a fresh device,
the number a Do-Not-Call code is sent to and its country (the guard against SMS pumping).
Counters name addresses, networks and numbers, like tokens, by keyed hash only: a key's TTL tells
when its window started, and in clear it would tie an address to the device registered then.

A batch of reports (counting=PER_ITEM) spends the report budget per valid item (`admit`):
the items that fit are filed, the rest answer 429 in their item results.

The limits themselves are settings: blocklist/config.py, CALLMARK_RATE_LIMIT_*.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional

import phonenumbers
import redis
from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from .. import devices, numbers, trust
from ..apikeys import KEY_TEXT_PREFIX
from ..errors import CallMarkError, Unauthorized
from ..keyed import keyed
from ..keys import PREFIX
from .auth import authenticated_device, bearer_token
from .body import parsed
from .routes import PER_ITEM, REGISTRY, SHARED_ROUND_TRIP, Limits

log = logging.getLogger(__name__)


def _keyed(purpose: str, value: str) -> str:
    return keyed(current_app.extensions["callmark"].secret, purpose, value).hex()[:24]


def _caller() -> str:
    """The bearer credential, keyed-hashed: limits per token or key, never storing it."""
    token = bearer_token()
    if not token:
        return _address()
    return "cred:" + _keyed("ratelimit", token)


def _address() -> str:
    return "addr:" + _keyed("ratelimit-address", request.remote_addr or "")


def _network() -> str:
    """The client's network (an address that is none counts on its own), keyed-hashed."""
    address = request.remote_addr or ""
    return "net:" + _keyed("ratelimit-network", trust.network_of(current_app.config["CALLMARK"], address) or address)


def _by_api_key() -> bool:
    return (bearer_token() or "").startswith(KEY_TEXT_PREFIX)


def _device_network() -> Optional[str]:
    """The client's network, for devices: API keys (vendors) keep their own limits."""
    return None if _by_api_key() else _network()


def _device() -> Optional[devices.Device]:
    """The caller's device, or None when the request carries no valid device token."""
    device = g.get("device")
    token = bearer_token()
    if device is None and token and not _by_api_key():
        try:  # before the route's own authentication, which takes the same answer
            device = authenticated_device(token)
        except Unauthorized:
            return None
    return device


def _fresh_device() -> Optional[str]:
    """The caller while its device is younger than CALLMARK_FRESH_DEVICE_DAYS, else None."""
    device = _device()
    if device is None:
        return None
    store = current_app.extensions["callmark"]
    return _caller() if store.clock() - device.created < store.config.fresh_device_days * 86400 else None


def _destination() -> Optional[str]:
    """The E.164 number a verification's body asks a code for, once a device asks (a request that
    names none, or no device, spends no destination's budget: the route refuses it)."""
    if "callmark_destination" not in g:
        g.callmark_destination = None
        body = parsed() if _device() is not None else None  # too deep a body: 400 here, as in the route
        if isinstance(body, dict) and isinstance(body.get("number"), str):
            region = body.get("region")
            store = current_app.extensions["callmark"]
            try:
                g.callmark_destination = numbers.normalize(
                    body["number"], region if isinstance(region, str) else store.config.default_region)
            except CallMarkError:
                pass
    return g.callmark_destination


def _destination_number() -> Optional[str]:
    """The destination number, keyed-hashed: SMS pumping rotates devices, never the numbers it earns from."""
    number = _destination()
    return None if number is None else "dest:" + _keyed("ratelimit-destination", number)


def _destination_country() -> Optional[str]:
    """The destination's country (its region, or its calling code for a non-geographic number),
    for numbers outside the default region: premium ranges abroad are what SMS pumping earns from."""
    number = _destination()
    if number is None:
        return None
    phone = phonenumbers.parse(number)
    region = phonenumbers.region_code_for_number(phone)
    if region == current_app.extensions["callmark"].config.default_region:
        return None
    return "country:" + (region if region and region != phonenumbers.UNKNOWN_REGION and region != "001"
                         else f"+{phone.country_code}")


# The limit classes a route declares (blocklist/web/routes.py), each (limit name, whose requests
# count; None: the limit does not apply); routes naming one limit share its budget.
REGISTRATION: Limits = (("registration", _address), ("registration_network", _network))
REPORTS: Limits = (("reports", _caller),)
ERASURE: Limits = (("erasure", _caller),)
DISPUTES: Limits = (("disputes", _caller), ("disputes_network", _network))
CALLS: Limits = (("calls", _caller),)
LOOKUPS: Limits = (("lookups", _caller), ("lookups_network", _device_network), ("lookups_fresh", _fresh_device))
FEED: Limits = (("feed", _caller),)
# In this order: a request the device's own budget refuses spends no destination's.
VERIFICATIONS: Limits = (("verifications", _caller), ("verifications_network", _network),
                         ("verifications_number", _destination_number), ("verifications_country", _destination_country))
DNC: Limits = (("dnc", _caller),)
SCRUB: Limits = (("scrub", _caller),)
PUBLIC: Limits = (("public", _address),)
CLASSES = (REGISTRATION, REPORTS, ERASURE, DISPUTES, CALLS, LOOKUPS, FEED, VERIFICATIONS, DNC, SCRUB, PUBLIC)

Counters = list[tuple[str, str]]  # (limit name, whose requests count)


def limit_names() -> set[str]:
    """Every limit a route can name: each must be a setting."""
    return {name for limits in CLASSES for name, _ in limits}


def _counters(limits) -> Counters:
    return [(name, who) for name, whose in limits if (who := whose()) is not None]


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

    def hit(self, counters: Counters, store=None) -> None:
        """Count one request against every limit of `counters`, in their order; raise
        RateLimited past one. A limit after the one that refused is left as it was (a request
        the device's own budget refuses spends no destination's). Given the store, and with the
        fixed-window Redis counting, all counters go in one round trip (and the few behind a
        refusal are given back in a second); otherwise one call per limit."""
        if store is None or not self.shares_round_trips:
            for name, who in counters:
                for item in self.limits[name]:
                    if not self.limiter.limiter.hit(item, name, who):
                        self.refuse(item, name, who)
            return
        items = self._items(counters)
        counts = store.pipelined(lambda pipe: self._queue_hits(store, pipe, items))
        for index, ((item, name, who), count) in enumerate(zip(items, counts)):
            if int(count) > item.amount:
                behind = items[index + 1:]
                if behind:
                    storage = self.limiter.limiter.storage
                    store.pipelined(lambda pipe: [pipe.decr(storage.prefixed_key(later.key_for(n, w)))
                                                  for later, n, w in behind])
                self.refuse(item, name, who)

    def _items(self, counters: Counters) -> list[tuple[RateLimitItem, str, str]]:
        return [(item, name, who) for name, who in counters for item in self.limits[name]]

    def _queue_hits(self, store, pipe, items: list[tuple[RateLimitItem, str, str]]) -> None:
        """Queue what FixedWindowRateLimiter.hit sends for each item: limits' increment script
        on its key."""
        storage = self.limiter.limiter.storage
        if ("limits", "incr_expire") not in store.scripts:  # loaded, and reloaded on NOSCRIPT, as the store's own
            store.redis.script_load(storage.lua_incr_expire.script)
            store.scripts["limits", "incr_expire"] = storage.lua_incr_expire
        for item, name, who in items:
            store.evalsha(pipe, storage.lua_incr_expire, [storage.prefixed_key(item.key_for(name, who))],
                          [item.get_expiry(), 1])

    def refuse(self, item: RateLimitItem, name: str, who: str):
        raise self.refusal(item, name, who)

    def refusal(self, item: RateLimitItem, name: str, who: str) -> RateLimited:
        reset_at = self.limiter.limiter.get_window_stats(item, name, who).reset_time
        return RateLimited(item, reset_at)

    def check(self, counters: Counters) -> None:
        """Refuse the request (and count it, as every refused request counts) when a limit has
        nothing left; count nothing otherwise."""
        for name, who in counters:
            for item in self.limits[name]:
                if not self.limiter.limiter.test(item, name, who):
                    for counted_name, counted_who in counters:
                        for other in self.limits[counted_name]:
                            self.limiter.limiter.hit(other, counted_name, counted_who)
                    self.refuse(item, name, who)

    def admit(self, counters: Counters, wanted: int) -> tuple[int, Optional[RateLimited]]:
        """Spend up to `wanted` units of every limit of `counters` at once; return how many fit
        and, when some did not, the refusal for them. The request costs one unit at least."""
        storage = self.limiter.limiter.storage
        items = self._items(counters)
        room = min([wanted, *(item.amount - storage.get(item.key_for(name, who)) for item, name, who in items)])
        cost = max(1, room)
        admitted, tightest = max(0, room), None
        for item, name, who in items:
            count = storage.incr(item.key_for(name, who), item.get_expiry(), amount=cost)
            left = item.amount - (count - cost)  # less than `room` when a concurrent request spent some
            if left < wanted and (tightest is None or left < tightest[0]):
                tightest = (left, item, name, who)
            admitted = max(0, min(admitted, left))
        if admitted >= wanted or tightest is None:
            return admitted, None
        return admitted, self.refusal(*tightest[1:])

    def counted(self, store, fill: Callable[[Any], None]) -> Any:
        """Run the one command `fill(pipe)` queues in a `store.pipelined` round trip, with this
        request's pending counters beside it (what FixedWindowRateLimiter.hit would send:
        limits' increment script on its key); raise RateLimited past a limit, else return the
        command's reply."""
        pending = g.pop("callmark_pending_limits", None)
        if pending is None:  # counted already, in before_request
            return store.pipelined(fill)[0]
        items = self._items(_counters(pending))

        def queue(pipe) -> None:
            fill(pipe)
            self._queue_hits(store, pipe, items)

        reply, *counts = store.pipelined(queue)
        for (item, name, who), count in zip(items, counts):
            if int(count) > item.amount:
                self.refuse(item, name, who)
        return reply


def counted(fill: Callable[[Any], None]) -> Any:
    """`Guard.counted` for the current request, on a route counted in its SHARED_ROUND_TRIP."""
    return current_app.extensions["callmark.ratelimit"].counted(current_app.extensions["callmark"], fill)


def admit(wanted: int) -> tuple[int, Optional[dict]]:
    """For a route counted PER_ITEM: how many of `wanted` items its budget takes (the first ones), and
    the error of the others; their 429 headers go on the answer."""
    guard = current_app.extensions["callmark.ratelimit"]
    admitted, refusal = guard.admit(_counters(REGISTRY[request.endpoint].limits), wanted)
    if refusal is None:
        return admitted, None
    g.callmark_limit_headers = refusal.headers
    retry_after = int(refusal.headers["Retry-After"])
    return admitted, {"code": "rate_limited",
                      "message": f"rate limit exceeded ({refusal.description}); retry after {retry_after} seconds",
                      "details": {"limit": refusal.description, "retry_after": retry_after}}


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
        declared = REGISTRY.get(request.endpoint or "")
        if declared is None or not declared.limits:
            return
        limits = declared.limits
        if guard.shares_round_trips and declared.counting == SHARED_ROUND_TRIP:
            g.callmark_pending_limits = limits  # whose: once the route has authenticated its caller
        elif declared.counting == PER_ITEM:
            guard.check(_counters(limits))
        else:
            guard.hit(_counters(limits), app.extensions["callmark"])

    @app.after_request
    def count_the_rest(response):
        pending = g.pop("callmark_pending_limits", None)
        if pending is not None:  # the route answered before its round trip: count it now
            try:
                for name, who in _counters(pending):
                    for item in guard.limits[name]:
                        limiter.limiter.hit(item, name, who)
            except redis.RedisError:
                log.warning("a rate-limit counter was not written: Redis did not answer")
        limited = g.pop("callmark_limit_headers", None)  # items of a batch past the budget
        if limited and response.status_code == 200:
            response.headers.extend(limited)
        return response

    return limiter
