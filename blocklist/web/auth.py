"""Bearer authentication: device tokens for phones, API keys for vendors and operators."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from .. import apikeys, devices


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


def device_required(view):
    """Reject the request with 401 unless it carries a valid device token; sets g.device and g.device_id."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.device = devices.authenticate(_store(), bearer_token(), cached=_reading())
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
            g.device = devices.authenticate(_store(), token, cached=_reading())
            g.device_id = g.device.id
        return view(*args, **kwargs)

    return wrapper
