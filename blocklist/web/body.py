"""Reading a request's JSON body, the one way every route and the rate limiter read it."""
from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from ..errors import ValidationFailed


def parsed() -> Any:
    """The body parsed as JSON (None when it is not JSON); ValidationFailed when it nests too deeply."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # the parser's depth limit; none of our bodies nests more than three deep
        raise ValidationFailed("the request body is nested too deeply") from None


def json_body(optional: bool = False) -> dict:
    """The body as a JSON object, sent as application/json (any charset); `optional`: no body reads as {}."""
    if optional and not request.get_data(cache=True):
        return {}
    if request.mimetype != "application/json":  # a form or text post is not JSON by accident
        raise UnsupportedMediaType("send the body as JSON, with Content-Type: application/json")
    body = parsed()
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body
