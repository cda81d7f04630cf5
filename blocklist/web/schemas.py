"""Request bodies, validated with marshmallow; every unknown field is refused."""
from __future__ import annotations

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .. import numbers, tags

MAX_BATCH = 500  # reports per batch request
# Every region phonenumbers knows, in upper or lower case: the OpenAPI document lists them all.
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS) + sorted(r.lower() for r in phonenumbers.SUPPORTED_REGIONS)


def _region() -> fields.String:
    return fields.String(validate=validate.OneOf(
        REGIONS, error="unknown region {input!r}; use a two-letter code such as CN or US"))


class FullMatch(validate.Regexp):
    """The whole value matches: marshmallow's Regexp uses re.match, whose "$" also matches before a
    trailing newline. The pattern stays anchored with ^ and $, as the OpenAPI document reads it."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# numbers.CONTROL as the OpenAPI document's pattern (tests/test_openapi.py checks the two
# agree), less the lone surrogates: they are no Unicode text, and a pattern cannot name them.
PLAIN_TEXT = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


def _no_control(value: str) -> None:
    if numbers.CONTROL.search(value):
        raise ValidationError("control characters are not allowed")


def _text(max_length: int, min_length: int | None = None, **kwargs) -> fields.String:
    """Free text without control characters, documented with PLAIN_TEXT."""
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), _no_control],
                         metadata={"pattern": PLAIN_TEXT}, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: 1, 0 and strings are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Strict(Schema):
    class Meta:
        unknown = RAISE


class CallSchema(Strict):
    ring_seconds = fields.Float(validate=validate.Range(min=0, max=3600), allow_nan=False)
    answered = StrictBoolean()
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)


class ReportSchema(Strict):
    number = fields.String(required=True)  # numbers.normalize says what is wrong with it
    tag = fields.String(required=True, validate=validate.OneOf(list(tags.BY_CODE)))
    region = _region()
    report_id = fields.String(validate=FullMatch(r"^[A-Za-z0-9._:-]{1,64}$",
                                                 error="1 to 64 letters, digits or . _ : -"))
    company = _text(100)
    note = _text(500)
    call = fields.Nested(CallSchema)


class CallEventSchema(Strict):
    number = fields.String(required=True)
    region = _region()
    ring_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=3600), allow_nan=False)
    answered = StrictBoolean(required=True)
    direction = fields.String(required=True, validate=validate.OneOf(["incoming", "outgoing"]))
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)


class BatchSchema(Strict):
    # Items are validated one by one (ReportSchema) so one bad item cannot sink the rest.
    # A null item is one more bad item (its own 400 result), like a number or a string.
    reports = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=MAX_BATCH))


class NumberQuerySchema(Strict):
    region = _region()


class StatsQuerySchema(Strict):
    from_ = fields.String(data_key="from", attribute="from", validate=validate.Length(equal=10),
                          metadata={"description": "first day, YYYY-MM-DD (UTC); default 30 days before `to`"})
    to = fields.String(validate=validate.Length(equal=10), metadata={"description": "last day, YYYY-MM-DD (UTC)"})


class FeedQuerySchema(Strict):
    # Opaque to clients; the characters are base64url's, so nothing else can be one.
    cursor = fields.String(validate=[validate.Length(max=8192), FullMatch(r"^[A-Za-z0-9_-]*={0,2}$")])
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class OverrideSchema(Strict):
    verdict = fields.String(required=True, validate=validate.OneOf(["allow", "block"]))
    reason = _text(500, 1, required=True)


class ClearOverrideSchema(Strict):
    reason = _text(500, 1, load_default="cleared")


class DisputeSchema(Strict):
    number = fields.String(required=True)
    region = _region()
    reason = _text(1000, 1, required=True)
    contact = _text(200, 3, required=True)


class ResolveSchema(Strict):
    override = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["allow", "block"]))
    note = _text(1000, 1, required=True)


class AuditQuerySchema(Strict):
    number = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
