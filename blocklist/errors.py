"""Domain errors. Each carries the API error code; the HTTP edge maps them to a status."""
from __future__ import annotations

from typing import Any


class CallMarkError(Exception):
    """Base of every error CallMark raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(CallMarkError):
    """A setting is missing or malformed; raised at start, never per request."""

    code = "config_error"
    status = 500


class InvalidNumber(CallMarkError):
    code = "invalid_number"
    status = 400


class InvalidPrefix(CallMarkError):
    code = "invalid_prefix"
    status = 400


class ValidationFailed(CallMarkError):
    code = "validation_error"
    status = 400


class Unauthorized(CallMarkError):
    code = "unauthorized"
    status = 401


class Forbidden(CallMarkError):
    code = "forbidden"
    status = 403


class Conflict(CallMarkError):
    code = "conflict"
    status = 409


class Gone(CallMarkError):
    code = "gone"
    status = 410


class NotFound(CallMarkError):
    code = "not_found"
    status = 404


class NotReady(CallMarkError):
    code = "not_ready"
    status = 503

    def __init__(self, checks: dict[str, str]):
        super().__init__("the service is not ready for traffic", {"checks": checks})


class CursorExpired(Gone):
    code = "cursor_expired"


class DeltaUnavailable(Gone):
    code = "delta_unavailable"


class InvalidVersion(ValidationFailed):
    code = "invalid_version"


class UnknownList(NotFound):
    code = "unknown_list"


class UnknownVersion(NotFound):
    code = "unknown_version"


class SigningUnavailable(Exception):
    """This process does not hold the seed of the key the service signs with."""


class KeyChangeRefused(Exception):
    """A rotation, retirement or revocation that the key state does not allow."""


class PublishError(Exception):
    """A publish could not complete; the previous versions stay served."""
