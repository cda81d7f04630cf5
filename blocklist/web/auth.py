"""Bearer authentication: device tokens for phones, API keys for vendors, telemarketers and
operators, the scraper's token; and each kind as a route declares it (`Auth`, blocklist/web/routes.py)."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import wraps
from typing import Callable

from flask import current_app, g, request

from .. import apikeys, devices
from ..errors import Unauthorized


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _store():
    return current_app.extensions["callmark"]


def _reading() -> bool:
    """A request that writes nothing may take a device token this process verified recently;
    every other one is verified against Redis, so an erasure holds in every process at once.
    (API keys are verified against Redis on every request.)"""
    return request.method in ("GET", "HEAD", "OPTIONS")


def authenticated_device(token: str | None) -> devices.Device:
    """The device of `token` (Unauthorized otherwise), verified once per request: the rate
    limiter, which needs the device before the route runs, and the route share the answer."""
    seen = g.get("callmark_device_auth")
    if seen is not None and seen[0] == token:
        return seen[1]
    device = devices.authenticate(_store(), token, cached=_reading())
    g.callmark_device_auth = (token, device)
    return device


def device_required(view):
    """Reject the request with 401 unless it carries a valid device token; sets g.device and g.device_id."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.device = authenticated_device(bearer_token())
        g.device_id = g.device.id
        return view(*args, **kwargs)

    return wrapper


def key_required(scope: str):
    """Reject the request unless it carries an API key with `scope` (401, or 403); sets g.api_key."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            g.api_key = apikeys.authenticate(_store(), bearer_token(), scope)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def device_or_key_required(view):
    """A device token or an API key (feed or admin scope) may call this route."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        if token and token.startswith(apikeys.KEY_TEXT_PREFIX):
            g.api_key = apikeys.authenticate(_store(), token, "feed")
        else:
            g.device = authenticated_device(token)
            g.device_id = g.device.id
        return view(*args, **kwargs)

    return wrapper


def scraper_required(view):
    """With CALLMARK_METRICS_TOKEN set, only a scrape that sends it as its bearer token is answered."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        expected = _store().config.metrics_token
        if expected is not None:
            given = bearer_token() or ""
            # compare_digest: the time taken says nothing about how much of a guess was right.
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise Unauthorized("/metrics needs Authorization: Bearer <CALLMARK_METRICS_TOKEN>")
        return view(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Auth:
    """Who may call a route: the decorator that checks the caller, and what the document says of it."""

    require: Callable[[Callable], Callable]
    security: tuple[dict[str, list], ...]  # OpenAPI security requirements, any one of which will do
    errors: tuple[int, ...]  # the statuses a refused caller gets


# The OpenAPI security schemes (all bearer tokens) the requirements below name.
SCHEMES = {"device": "device token from POST /v1/devices", "feed_key": "API key, scope feed or admin",
           "admin_key": "API key, scope admin", "scrub_key": "API key, scope scrub or admin",
           "regulator_key": "API key, scope regulator (bound to one agency) or admin (every agency)",
           "metrics_token": "CALLMARK_METRICS_TOKEN, when it is set"}

DEVICE = Auth(device_required, ({"device": []},), (401,))
DEVICE_OR_KEY = Auth(device_or_key_required, ({"device": []}, {"feed_key": []}), (401, 403))
FEED_KEY = Auth(key_required("feed"), ({"feed_key": []},), (401, 403))
ADMIN_KEY = Auth(key_required("admin"), ({"admin_key": []},), (401, 403))
SCRUB_KEY = Auth(key_required("scrub"), ({"scrub_key": []},), (401, 403))  # the organisation is the key's name
REGULATOR_KEY = Auth(key_required("regulator"), ({"regulator_key": []},), (401, 403))  # its agency: the key's
# The token is optional ({} needs none), so its 401 is among the route's own errors.
SCRAPER = Auth(scraper_required, ({}, {"metrics_token": []}), ())
