"""Bearer-token authentication for device routes."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from .. import devices


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def device_required(view):
    """Reject the request with 401 unless it carries a valid device token; sets g.device_id."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.device_id = devices.authenticate(current_app.extensions["callmark"], bearer_token())
        return view(*args, **kwargs)

    return wrapper
