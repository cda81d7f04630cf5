"""Every error CallMark raises on purpose, in one module. Each carries its API error code;
the HTTP edge (blocklist/web/errors.py) maps each class to a status."""
from __future__ import annotations

from typing import Any


class CallMarkError(Exception):
    """Base of every error CallMark raises on purpose."""

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(CallMarkError):
    """A setting is missing or malformed; raised at start, never per request."""

    code = "config_error"


class DataFolderInUse(ConfigError):
    """Another live process owns the embedded Redis of this data folder."""

    code = "data_folder_in_use"


class InvalidNumber(CallMarkError):
    code = "invalid_number"


class InvalidPrefix(CallMarkError):
    code = "invalid_prefix"


class ValidationFailed(CallMarkError):
    code = "validation_error"


class Unauthorized(CallMarkError):
    code = "unauthorized"


class Forbidden(CallMarkError):
    code = "forbidden"


class Conflict(CallMarkError):
    code = "conflict"


class Gone(CallMarkError):
    code = "gone"


class NotFound(CallMarkError):
    code = "not_found"


class NotReady(CallMarkError):
    code = "not_ready"

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


class Unavailable(CallMarkError):
    """A service CallMark depends on (other than Redis) cannot do the work now; retry later."""

    code = "unavailable"


class SmsUnavailable(Unavailable):
    """No SMS gateway is set (CALLMARK_SMS_WEBHOOK_URL) in the production profile."""

    code = "sms_unavailable"


class SmsFailed(Unavailable):
    """The SMS gateway refused the message or did not answer after the retries."""

    code = "sms_failed"


class VerificationFailed(CallMarkError):
    """A Do-Not-Call verification code that is wrong, expired, used up, or of no known verification."""

    code = "verification_failed"


class NotRegistered(NotFound):
    """The device has no Do-Not-Call registration of this number."""

    code = "not_registered"


class UnknownConsent(NotFound):
    """The device has no consent with this id."""

    code = "unknown_consent"


class QuotaExceeded(CallMarkError):
    """A scrub past the key's daily quota of numbers (CALLMARK_SCRUB_DAILY_NUMBERS); nothing was scrubbed."""

    code = "quota_exceeded"
