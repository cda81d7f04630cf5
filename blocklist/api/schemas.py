"""Request bodies, validated with marshmallow; every unknown field is refused."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .. import numbers, tags

MAX_BATCH = 500  # reports per batch request
def _no_control(value: str) -> None:
    if numbers.CONTROL.search(value):
        raise ValidationError("control characters are not allowed")


def _known_region(value: str) -> None:
    if not numbers.is_region(value.upper()):
        raise ValidationError(f"unknown region {value!r}; use a two-letter code such as CN or US")


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
    region = fields.String(validate=[validate.Length(equal=2), _known_region])
    report_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$",
                                                       error="1 to 64 letters, digits or . _ : -"))
    company = fields.String(validate=[validate.Length(max=100), _no_control])
    note = fields.String(validate=[validate.Length(max=500), _no_control])
    call = fields.Nested(CallSchema)


class CallEventSchema(Strict):
    number = fields.String(required=True)
    region = fields.String(validate=[validate.Length(equal=2), _known_region])
    ring_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=3600), allow_nan=False)
    answered = StrictBoolean(required=True)
    direction = fields.String(required=True, validate=validate.OneOf(["incoming", "outgoing"]))
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)


class BatchSchema(Strict):
    # Items are validated one by one (ReportSchema) so one bad item cannot sink the rest.
    reports = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=MAX_BATCH))


class NumberQuerySchema(Strict):
    region = fields.String(validate=[validate.Length(equal=2), _known_region])


class StatsQuerySchema(Strict):
    from_ = fields.String(data_key="from", attribute="from", validate=validate.Length(equal=10),
                          metadata={"description": "first day, YYYY-MM-DD (UTC); default 30 days before `to`"})
    to = fields.String(validate=validate.Length(equal=10), metadata={"description": "last day, YYYY-MM-DD (UTC)"})


class FeedQuerySchema(Strict):
    cursor = fields.String(validate=validate.Length(max=8192))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class OverrideSchema(Strict):
    verdict = fields.String(required=True, validate=validate.OneOf(["allow", "block"]))
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=500), _no_control])


class ClearOverrideSchema(Strict):
    reason = fields.String(load_default="cleared", validate=[validate.Length(min=1, max=500), _no_control])


class DisputeSchema(Strict):
    number = fields.String(required=True)
    region = fields.String(validate=[validate.Length(equal=2), _known_region])
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=1000), _no_control])
    contact = fields.String(required=True, validate=[validate.Length(min=3, max=200), _no_control])


class ResolveSchema(Strict):
    override = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["allow", "block"]))
    note = fields.String(required=True, validate=[validate.Length(min=1, max=1000), _no_control])


class AuditQuerySchema(Strict):
    number = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
