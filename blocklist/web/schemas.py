"""Request bodies, validated with marshmallow; every unknown field is refused."""
from __future__ import annotations

import re
from datetime import datetime

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .. import apikeys, complaints, dnc, numbers, tags

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


def _text(max_length: int, min_length: int | None = None, metadata: dict | None = None, **kwargs) -> fields.String:
    """Free text without control characters, documented with PLAIN_TEXT."""
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), _no_control],
                         metadata={"pattern": PLAIN_TEXT, **(metadata or {})}, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: 1, 0 and strings are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Strict(Schema):
    class Meta:
        unknown = RAISE


class Query(Strict):
    """A query string's schema: its errors say they are the query's (errors.py), not the body's."""

    def handle_error(self, error: ValidationError, data, **kwargs) -> None:
        error.part = "query"


def _tag() -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(list(tags.BY_CODE)))


def _report_id() -> fields.String:
    return fields.String(validate=FullMatch(r"^[A-Za-z0-9._:-]{1,64}$", error="1 to 64 letters, digits or . _ : -"))


def _called_number() -> fields.String:
    # The device's own number that rang: only hashed, to find its Do-Not-Call registration
    # (a marketing call to it may be a violation); never stored. numbers.normalize checks it.
    return fields.String(validate=validate.Length(max=64), metadata={
        "description": "the device's own number that was called (E.164 or national in `region`): a marketing "
                       "tag for a call to its Do-Not-Call registration may be a violation; never stored"})


class ReportSchema(Strict):
    number = fields.String(required=True)  # numbers.normalize says what is wrong with it
    tag = _tag()
    region = _region()
    report_id = _report_id()
    company = _text(100)
    note = _text(500)
    call = fields.Nested(lambda: CallSchema())  # declared below, beside the CallTime its `at` is
    called_number = _called_number()


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


class NumberQuerySchema(Query):
    region = _region()


class StatsQuerySchema(Query):
    from_ = fields.String(data_key="from", attribute="from", validate=validate.Length(equal=10),
                          metadata={"description": "first day, YYYY-MM-DD (UTC); default 30 days before `to`"})
    to = fields.String(validate=validate.Length(equal=10), metadata={"description": "last day, YYYY-MM-DD (UTC)"})


class FeedQuerySchema(Query):
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


class AuditQuerySchema(Query):
    number = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


# --- Do-Not-Call --------------------------------------------------------------------------

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"  # a time of day in the number's time zone, 00:00 to 23:59 ...
HHMM_END = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"  # ... and 24:00 for the end of a day
MAX_SCRUB_JSON = 10_000  # numbers per JSON scrub; larger lists go as text/csv
MAX_SCRUB_TEXT = 100  # characters of one submitted number: anything longer is no number, and is refused
_MARKETING = validate.OneOf(dnc.MARKETING, error="{input!r} is not a marketing tag; marketing tags: {choices}")


def _marketing_tags(**kwargs) -> fields.List:
    """Marketing tag codes, at least one."""
    return fields.List(fields.String(validate=_MARKETING), validate=validate.Length(min=1, max=len(dnc.MARKETING)),
                       **kwargs)


class Refusal(fields.Field):
    """`"all"`, or a list of marketing tag codes: fraud, debt collection and harassment are never
    callable, so they cannot be refused."""

    def __init__(self, **kwargs):
        tags_ = {"type": "string", "enum": list(dnc.MARKETING)}
        super().__init__(metadata={"oneOf": [{"type": "string", "enum": ["all"]},
                                             {"type": "array", "items": tags_, "minItems": 1,
                                              "maxItems": len(dnc.MARKETING)}]}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "all":
            return value
        if not isinstance(value, list) or not value:
            raise ValidationError('refuse is "all" or a list of marketing tags')
        if len(value) > len(dnc.MARKETING):
            raise ValidationError(f"at most {len(dnc.MARKETING)} tags")
        for tag in value:
            if tag not in dnc.MARKETING:  # a non-string is no tag either
                known = isinstance(tag, str) and tag in tags.BY_CODE
                raise ValidationError(f"{tag!r} is not a marketing tag ("
                                      + ("never callable, so never refused" if known else "no such tag")
                                      + "); marketing tags: " + ", ".join(dnc.MARKETING))
        return value


class AcceptWindowSchema(Strict):
    days = fields.List(fields.String(validate=validate.OneOf(dnc.DAYS)), required=True,
                       validate=validate.Length(min=1, max=len(dnc.DAYS)))
    from_ = fields.String(data_key="from", attribute="from", required=True,
                          validate=FullMatch(HHMM, error="HH:MM, 00:00 to 23:59"),
                          metadata={"description": "local time of the number; a window whose `to` is not later "
                                                   "ends the next day"})
    to = fields.String(required=True, validate=FullMatch(HHMM_END, error="HH:MM, 00:00 to 24:00"))
    categories = fields.List(fields.String(validate=_MARKETING), validate=validate.Length(max=len(dnc.MARKETING)),
                             metadata={"description": "the refused categories callable inside the window; "
                                                      "none or empty: every one"})


class PreferencesSchema(Strict):
    refuse = Refusal(required=True)
    accept_windows = fields.List(fields.Nested(AcceptWindowSchema), validate=validate.Length(max=dnc.MAX_WINDOWS))


class VerificationRequestSchema(Strict):
    number = fields.String(required=True)
    region = _region()


class RegistrationRequestSchema(Strict):
    verification_id = fields.String(required=True, validate=FullMatch(r"^[A-Za-z0-9_-]{1,64}$",
                                                                      error="the id POST /v1/dnc/verifications gave"))
    code = fields.String(required=True, validate=FullMatch(rf"^[0-9]{{{dnc.CODE_DIGITS}}}$",
                                                           error=f"the {dnc.CODE_DIGITS} digits sent by SMS"))
    preferences = fields.Nested(PreferencesSchema, required=True)


class PreferencesUpdateSchema(Strict):
    preferences = fields.Nested(PreferencesSchema, required=True)


class ConsentRequestSchema(Strict):
    number = fields.String(required=True, metadata={"description": "a number this device registered"})
    region = _region()
    organization = fields.String(required=True, validate=FullMatch(apikeys.NAME_PATTERN, error="a scrub key's name"),
                                 metadata={"description": "the name of the organisation's `scrub` API key"})
    categories = _marketing_tags(required=True)


# An ISO 8601 time with its offset, 1970 to 2099 (what the windows and receipts can place), as
# a pattern that only real dates match: 29 February only in the leap years.
CALL_AT = (r"^((19[7-9][0-9]|20[0-9]{2})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)"
           r"|(0[13578]|1[02])-31)|(19[79][26]|198[048]|20[02468][048]|20[13579][26])-02-29)"
           r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")


class CallTime(fields.String):
    """When the calls of a scrub will be made (or a reported call rang), as unix seconds."""

    check = FullMatch(CALL_AT, error="an ISO 8601 time with its offset (Z or +08:00), 1970 to 2099")

    def __init__(self, description: str = "when the calls will be made (ISO 8601 with an offset); default now",
                 **kwargs):
        super().__init__(metadata={"pattern": CALL_AT, "description": description}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> float:
        text = self.check(super()._deserialize(value, attr, data, **kwargs))  # fromisoformat would guess at more
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:  # 29 February of a year that has none
            raise ValidationError(f"{text[:10]} is no day") from None


class CallSchema(Strict):
    ring_seconds = fields.Float(validate=validate.Range(min=0, max=3600), allow_nan=False)
    answered = StrictBoolean()
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)
    at = CallTime("when the call rang (ISO 8601 with an offset); a later time than the report's counts as "
                  "the report's; default the time of the report")


UNPAIRED_SURROGATE = re.compile(r"[\ud800-\udfff]")  # JSON can carry them; no answer can encode them


def _text_only(value: str) -> None:
    if UNPAIRED_SURROGATE.search(value):
        raise ValidationError("a lone surrogate is no Unicode text")


class ScrubQuerySchema(Query):
    category = fields.String(validate=_MARKETING, metadata={"description": "required with a text/csv body"})
    call_at = CallTime()


class ScrubRequestSchema(Strict):
    category = fields.String(required=True, validate=_MARKETING)
    call_at = CallTime()
    # Each number is scrubbed on its own: one that is no phone number answers invalid_number.
    numbers = fields.List(fields.String(validate=[validate.Length(max=MAX_SCRUB_TEXT), _text_only]), required=True,
                          validate=validate.Length(min=1, max=MAX_SCRUB_JSON))


class ComplaintSchema(Strict):
    """A complaint: the 12321 form's fields, and the device's vote with its tag (as a report)."""

    number = fields.String(required=True, metadata={"description": "the number that called"})
    region = _region()
    tag = _tag()
    company = _text(100, metadata={"description": "the company the caller spoke for, as the reporter heard it"})
    content = _text(complaints.MAX_CONTENT, metadata={"description": "what was said"})
    call_at = CallTime("when the call rang (ISO 8601 with an offset); more than 5 minutes ahead is refused; "
                       "default the time of the complaint")
    call_type = fields.String(validate=validate.OneOf(complaints.CALL_TYPES))
    duration_seconds = fields.Float(validate=validate.Range(min=0, max=86400), allow_nan=False)
    report_id = _report_id()
    contact_consent = StrictBoolean(metadata={
        "description": "the reporter agrees to be contacted by the agency; only then is `contact` taken"})
    contact = _text(200, 1, metadata={"description": "how the agency may reach the reporter (kept encrypted)"})
    reporter_region = fields.String(validate=FullMatch(r"^[A-Za-z0-9][A-Za-z0-9 +-]{0,15}$",
                                                       error="a region or area code, up to 16 letters, digits, "
                                                             "spaces, + or -"))
    called_number = _called_number()

    @validates_schema
    def _contact_needs_consent(self, data, **kwargs) -> None:
        if "contact" in data and data.get("contact_consent") is not True:
            raise ValidationError("a contact is taken only with \"contact_consent\": true", "contact")


class TransitionSchema(Strict):
    to = fields.String(required=True, validate=validate.OneOf(["verifying", "upheld", "rejected", "transferred"]))
    note = _text(1000, load_default="")
    company = _text(100, 1, metadata={"description": "upheld: the company the agency verified (what exposure shows)"})
    agency = fields.String(validate=validate.Length(max=32), metadata={
        "description": "transferred: the agency the case goes to (GET /v1/agencies)"})


def _day(description: str, **kwargs) -> fields.String:
    return fields.String(validate=FullMatch(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", error="a date: YYYY-MM-DD"),
                         metadata={"description": description}, **kwargs)


class CasesQuerySchema(Query):
    status = fields.String(validate=validate.OneOf(["received", "verifying", "upheld", "rejected"]))
    from_ = _day("first day of last activity, YYYY-MM-DD (UTC)", data_key="from", attribute="from")
    to = _day("last day of last activity, YYYY-MM-DD (UTC)")
    cursor = fields.String(validate=[validate.Length(max=200), FullMatch(r"^[A-Za-z0-9_-]*$")],
                           metadata={"description": "next_cursor of the page before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class ExportQuerySchema(Query):
    from_ = _day("first day received, YYYY-MM-DD (UTC); default 30 days before `to`", data_key="from",
                 attribute="from")
    to = _day("last day received, YYYY-MM-DD (UTC); default today")
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "ndjson", "ftc"]))


class MonthlyReportQuerySchema(Query):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
