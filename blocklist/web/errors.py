"""The one error shape of the API, produced here for every 4xx and 5xx."""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from .. import errors

# Each domain error's status, by its class or the nearest base listed (the MRO decides).
STATUS: dict[type, int] = {
    errors.CallMarkError: 400,
    errors.ConfigError: 500,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.NotReady: 503,
    errors.Unavailable: 503,
    errors.QuotaExceeded: 429,
}

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"))


def status_of(exc: errors.CallMarkError) -> int:
    """The HTTP status of a domain error."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def register(app: Flask) -> None:
    @app.errorhandler(errors.CallMarkError)
    def domain_error(exc: errors.CallMarkError):
        return error_response(status_of(exc), exc.code, exc.message, exc.details)

    @app.errorhandler(ValidationError)
    def validation_error(exc: ValidationError):
        part = getattr(exc, "part", "request body")  # schemas.Query marks the query's own
        return error_response(400, "validation_error", f"the {part} is not valid", {"fields": exc.messages})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        message = exc.description or exc.name
        if exc.code == 429:
            message = f"rate limit exceeded ({message}); retry after the Retry-After seconds"
            headers = getattr(exc, "headers", None) or {"Retry-After": "1"}
        return error_response(exc.code or 500, _http_code(exc), message, headers=headers)

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def store_down(exc: Exception):
        log.warning("Redis unavailable: %s", exc.__class__.__name__)
        return error_response(503, "store_unavailable", "the data store is not answering; retry shortly",
                              headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
