"""Request bodies, validated with marshmallow; every unknown field is refused."""
from __future__ import annotations

import re

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .. import numbers, tags

MAX_BATCH = 500  # reports per batch request
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _no_control(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("control characters are not allowed")


def _known_region(value: str) -> None:
    if not numbers.is_region(value.upper()):
        raise ValidationError(f"unknown region {value!r}; use a two-letter code such as CN or US")


class Strict(Schema):
    class Meta:
        unknown = RAISE


class CallSchema(Strict):
    ring_seconds = fields.Float(validate=validate.Range(min=0, max=3600), allow_nan=False)
    answered = fields.Boolean(truthy={True}, falsy={False})  # JSON true/false only
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)


class ReportSchema(Strict):
    number = fields.String(required=True, validate=validate.Length(min=1, max=numbers.MAX_INPUT_LENGTH))
    tag = fields.String(required=True, validate=validate.OneOf(list(tags.BY_CODE)))
    region = fields.String(validate=[validate.Length(equal=2), _known_region])
    report_id = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,64}$",
                                                       error="1 to 64 letters, digits or . _ : -"))
    company = fields.String(validate=[validate.Length(max=100), _no_control])
    note = fields.String(validate=[validate.Length(max=500), _no_control])
    call = fields.Nested(CallSchema)


class BatchSchema(Strict):
    # Items are validated one by one (ReportSchema) so one bad item cannot sink the rest.
    reports = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=MAX_BATCH))


class NumberQuerySchema(Strict):
    region = fields.String(validate=[validate.Length(equal=2), _known_region])
