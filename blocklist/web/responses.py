"""Response bodies, as marshmallow schemas: they document the API (OpenAPI) and nothing else."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..lists import LIST_RULES
from ..reputation import VERDICTS
from ..tags import TAXONOMY

_VERDICT = validate.OneOf(VERDICTS)
_TAG_CODES = [t.code for t in TAXONOMY]


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "snake_case, stable: branch on it"})
    message = fields.String(required=True, metadata={"description": "for a person"})
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class ReadySchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.Equal("ok"))


class TagSchema(Schema):
    code = fields.String(required=True)
    name_en = fields.String(required=True)
    name_zh = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["spam", "info", "safe"]))
    severity = fields.Integer(required=True, metadata={"description": "0 is the most severe"})
    marketing = fields.Boolean(required=True, metadata={"description": "a marketing category: Do-Not-Call "
                                                                       "registrations may refuse it"})


class TagsSchema(Schema):
    tags = fields.List(fields.Nested(TagSchema), required=True)


class DeviceSchema(Schema):
    device_id = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "send as Authorization: Bearer <token>"})


class ReportResultSchema(Schema):
    number = fields.String(required=True, metadata={"description": "E.164"})
    tag = fields.String(required=True, validate=validate.OneOf(_TAG_CODES))
    duplicate = fields.Boolean(required=True)


class BatchItemSchema(Schema):
    index = fields.Integer(required=True)
    status = fields.Integer(required=True, validate=validate.OneOf([201, 400]))
    number = fields.String()
    tag = fields.String()
    duplicate = fields.Boolean()
    error = fields.Nested(ErrorBodySchema)


class BatchResultSchema(Schema):
    results = fields.List(fields.Nested(BatchItemSchema), required=True)
    accepted = fields.Integer(required=True)
    rejected = fields.Integer(required=True)


class WithdrawSchema(Schema):
    number = fields.String(required=True)
    withdrawn = fields.Boolean(required=True)


class TagScoreSchema(Schema):
    reporters = fields.Integer(required=True)
    score = fields.Float(required=True)


class ReputationSchema(Schema):
    number = fields.String(required=True)
    verdict = fields.String(required=True, validate=_VERDICT)
    label = fields.String(required=True, allow_none=True)
    score = fields.Float(required=True, metadata={"description": "decayed spam evidence net of safe, in fresh reports"})
    reporters = fields.Integer(required=True)
    tags = fields.Dict(keys=fields.String(), values=fields.Nested(TagScoreSchema), required=True)
    first_seen = fields.String(required=True, allow_none=True)
    last_seen = fields.String(required=True, allow_none=True)
    lists = fields.List(fields.String(validate=validate.OneOf(list(LIST_RULES))), required=True)
    override = fields.String(required=True, allow_none=True, validate=validate.OneOf(["allow", "block"]))
    disputed = fields.Boolean(required=True)
    held = fields.Boolean(required=True, metadata={
        "description": "the burst guard holds the number at warn until an operator reviews it"})
    detected = fields.List(fields.String(), required=True, metadata={
        "description": "tags given by CallMark's own detectors (ring_once), not by people"})
    dnc_violations = fields.Integer(required=True, metadata={
        "description": "distinct reporters whose counted report is a Do-Not-Call violation: a marketing call "
                       "to their registered number that refused it (evidence; the verdict does not count it)"})


class CallRecordedSchema(Schema):
    number = fields.String(required=True)
    counted = fields.Boolean(required=True, metadata={"description": "the detector kept the event"})
    ring_once = fields.Boolean(required=True, metadata={"description": "the detector has tagged the number"})


class DayCountSchema(Schema):
    date = fields.String(required=True)
    reports = fields.Integer(required=True)


class TagShareSchema(Schema):
    tag = fields.String(required=True)
    name_en = fields.String(required=True)
    name_zh = fields.String(required=True)
    reports = fields.Integer(required=True)
    share = fields.Float(required=True, metadata={"description": "of all reports in the period, 0 to 1"})


class StatsSchema(Schema):
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)
    reports = fields.Integer(required=True)
    reports_per_day = fields.List(fields.Nested(DayCountSchema), required=True)
    tag_shares = fields.List(fields.Nested(TagShareSchema), required=True)
    top_numbers = fields.List(fields.Dict(), required=True)
    lists = fields.List(fields.Dict(), required=True)
    recent_publishes = fields.List(fields.Dict(), required=True)
    open_disputes = fields.List(fields.Dict(), required=True)
    overrides = fields.List(fields.Dict(), required=True)


class HeldSchema(Schema):
    numbers = fields.List(fields.Nested(ReputationSchema), required=True)


class EraseSchema(Schema):
    erased = fields.Boolean(required=True)
    votes_withdrawn = fields.Integer(required=True)


class PrefixMatchSchema(Schema):
    hash = fields.String(required=True, metadata={"description": "SHA-256 of the E.164 number, hex"})
    verdict = fields.String(required=True, validate=_VERDICT)
    label = fields.String(required=True, allow_none=True)
    reporters = fields.Integer(required=True)
    score = fields.Float(required=True)
    tags = fields.Dict(keys=fields.String(), values=fields.Nested(TagScoreSchema), required=True)
    lists = fields.List(fields.String(), required=True)


class PrefixSchema(Schema):
    prefix = fields.String(required=True)
    matches = fields.List(fields.Nested(PrefixMatchSchema), required=True)


class DisputeOpenedSchema(Schema):
    dispute_id = fields.String(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)


class DisputeRecordSchema(Schema):
    dispute_id = fields.String(required=True)
    number = fields.String(required=True)
    reason = fields.String(required=True)
    contact = fields.String(required=True)
    status = fields.String(required=True)
    opened_at = fields.String(required=True)
    reputation = fields.Nested(ReputationSchema, required=True)


class DisputesSchema(Schema):
    disputes = fields.List(fields.Nested(DisputeRecordSchema), required=True)


class DisputeResolvedSchema(Schema):
    dispute_id = fields.String(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)
    reputation = fields.Nested(ReputationSchema, required=True)


class AuditSchema(Schema):
    entries = fields.List(fields.Dict(), required=True)


class FeedChangeSchema(Schema):
    number = fields.String(required=True)
    verdict = fields.String(required=True, validate=_VERDICT)
    label = fields.String(required=True, allow_none=True)
    reporters = fields.Integer(required=True)
    score = fields.Float(required=True)
    lists = fields.List(fields.String(), required=True)
    updated_at = fields.String(required=True)
    dnc_violations = fields.Integer(required=True, metadata={
        "description": "the number's Do-Not-Call violations (distinct reporters) when the page is read"})


class FeedPageSchema(Schema):
    changes = fields.List(fields.Nested(FeedChangeSchema), required=True)
    next_cursor = fields.String(required=True)


class ListInfoSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True, allow_none=True)
    generation = fields.Integer(required=True, allow_none=True)
    count = fields.Integer(required=True)
    capacity = fields.Integer(required=True, allow_none=True)
    error_rate = fields.Float(required=True, allow_none=True)
    snapshot_bytes = fields.Integer(required=True, allow_none=True)
    bytes_per_number = fields.Float(required=True, allow_none=True)
    bytes_per_number_when_full = fields.Float(required=True, allow_none=True)
    published_at = fields.String(required=True, allow_none=True)


class ListsSchema(Schema):
    lists = fields.List(fields.Nested(ListInfoSchema), required=True)


class ManifestSchema(Schema):
    manifest = fields.Dict(required=True, metadata={"description": "see docs/PROTOCOL.md section 4"})
    signature = fields.String(required=True, metadata={"description": "base64 Ed25519 over the canonical manifest"})


class SigningKeysSchema(Schema):
    algorithm = fields.String(required=True, validate=validate.Equal("ed25519"))
    key_id = fields.String(required=True)
    public_key = fields.String(required=True)
    next = fields.Dict(required=True, allow_none=True)
    previous = fields.Dict(required=True, allow_none=True)
    retired = fields.List(fields.Dict(), required=True, metadata={
        "description": "signed retirement statements, oldest first (docs/PROTOCOL.md section 5)"})
    revoked = fields.List(fields.Dict(), required=True, metadata={
        "description": "signed revocation statements, oldest first: refuse anything the named key signed"})


# --- Do-Not-Call --------------------------------------------------------------------------

class VerificationSchema(Schema):
    verification_id = fields.String(required=True, metadata={"description": "send it with the code to register"})
    expires_at = fields.String(required=True, metadata={"description": "the code's expiry (10 minutes)"})


class AcceptWindowShownSchema(Schema):
    days = fields.List(fields.String(), required=True)
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)
    categories = fields.List(fields.String(), required=True)


class DncPreferencesSchema(Schema):
    refuse = fields.Raw(required=True, metadata={"description": '"all", or the refused marketing tags'})
    accept_windows = fields.List(fields.Nested(AcceptWindowShownSchema))


class RegistrationSchema(Schema):
    number = fields.String(required=True, metadata={"description": "E.164"})
    registered_at = fields.String(required=True)
    effective_at = fields.String(required=True, metadata={
        "description": "from when a call to the number counts as a violation (CALLMARK_DNC_GRACE_DAYS); "
                       "the scrub respects it at once"})
    expires_at = fields.String(required=True, metadata={"description": "unless the number is verified again"})
    preferences = fields.Nested(DncPreferencesSchema, required=True)


class RegistrationsSchema(Schema):
    registrations = fields.List(fields.Nested(RegistrationSchema), required=True)


class RegistrationRemovedSchema(Schema):
    number = fields.String(required=True)
    removed = fields.Boolean(required=True)


class ConsentSchema(Schema):
    consent_id = fields.String(required=True)
    number = fields.String(required=True)
    organization = fields.String(required=True)
    categories = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True)


class ConsentWithdrawnSchema(Schema):
    consent_id = fields.String(required=True)
    withdrawn = fields.Boolean(required=True)


SCRUB_REASONS = ["registered", "category", "outside_window", "consent", "invalid_number", ""]


class ScrubItemSchema(Schema):
    number = fields.String(required=True, metadata={"description": "E.164, or the input as given when invalid"})
    callable = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(SCRUB_REASONS), metadata={
        "description": "registered, category or outside_window: not callable; consent: callable by consent; "
                       "invalid_number; empty: callable, not registered"})


class ScrubResultSchema(Schema):
    results = fields.List(fields.Nested(ScrubItemSchema), required=True)
    receipt_id = fields.String(required=True)


class ReceiptSchema(Schema):
    receipt_id = fields.String(required=True)
    organization = fields.String(required=True)
    at = fields.String(required=True, metadata={"description": "when the scrub was made"})
    category = fields.String(required=True)
    count = fields.Integer(required=True)
    callable = fields.Integer(required=True)
    sha256 = fields.String(required=True, metadata={
        "description": "hex SHA-256 of the submitted numbers, each E.164 (or as given when invalid), joined by \\n"})


class ReceiptsSchema(Schema):
    receipts = fields.List(fields.Nested(ReceiptSchema), required=True, metadata={"description": "newest first"})


class DncDaySchema(Schema):
    date = fields.String(required=True)
    new = fields.Integer(required=True, metadata={"description": "registrations of a number not registered (live) before"})
    renewed = fields.Integer(required=True, metadata={"description": "live registrations verified again by their device"})
    moved = fields.Integer(required=True, metadata={"description": "live registrations taken over by another device"})
    updated = fields.Integer(required=True, metadata={"description": "preference changes"})
    removed = fields.Integer(required=True, metadata={"description": "registrations removed (by the device or with it)"})
    expired = fields.Integer(required=True, metadata={"description": "registrations that expired unverified (once the day is over)"})
    scrubs = fields.Integer(required=True)
    numbers_scrubbed = fields.Integer(required=True)
    callable = fields.Integer(required=True)
    violations = fields.Integer(required=True)


class DncRegionSchema(Schema):
    region = fields.String(required=True, metadata={"description": "ISO 3166 region of the numbers; 001 non-geographic"})
    registrations = fields.Integer(required=True, metadata={"description": "live now"})
    new = fields.Integer(required=True, metadata={"description": "in the period"})
    removed = fields.Integer(required=True, metadata={"description": "in the period"})
    expired = fields.Integer(required=True, metadata={"description": "in the period"})


class DncRefusalSchema(Schema):
    category = fields.String(required=True, metadata={"description": "a marketing tag"})
    name_en = fields.String(required=True)
    name_zh = fields.String(required=True)
    registrations = fields.Integer(required=True, metadata={"description": "live registrations refusing it"})
    share = fields.Float(required=True, metadata={"description": "of all live registrations, 0 to 1"})


class DncWindowsSchema(Schema):
    registrations = fields.Integer(required=True, metadata={"description": "live registrations with accept windows"})
    share = fields.Float(required=True, metadata={"description": "of all live registrations, 0 to 1"})


class DncViolationsSchema(Schema):
    category = fields.String(required=True)
    violations = fields.Integer(required=True, metadata={"description": "in the period"})


class DncStatsSchema(Schema):
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)
    registrations = fields.Integer(required=True, metadata={"description": "live registrations now"})
    new = fields.Integer(required=True, metadata={"description": "new registrations in the period"})
    removed = fields.Integer(required=True)
    expired = fields.Integer(required=True)
    per_day = fields.List(fields.Nested(DncDaySchema), required=True)
    by_region = fields.List(fields.Nested(DncRegionSchema), required=True)
    refusals = fields.List(fields.Nested(DncRefusalSchema), required=True)
    accept_windows = fields.Nested(DncWindowsSchema, required=True)
    scrubs = fields.Integer(required=True)
    numbers_scrubbed = fields.Integer(required=True)
    callable = fields.Integer(required=True, metadata={"description": "of the numbers scrubbed"})
    callable_share = fields.Float(required=True, metadata={"description": "callable of numbers scrubbed, 0 to 1"})
    violations = fields.List(fields.Nested(DncViolationsSchema), required=True)


# --- complaints, cases and exposure ------------------------------------------------------------

class ComplaintFiledSchema(Schema):
    complaint_id = fields.String(required=True)
    number = fields.String(required=True)
    case_id = fields.String(required=True)
    agency = fields.String(required=True, metadata={"description": "the agency it was routed to (GET /v1/agencies)"})
    case_status = fields.String(required=True)
    dnc_violation = fields.Boolean(required=True)
    duplicate = fields.Boolean(required=True, metadata={"description": "sent before (its report_id): nothing new filed"})


class ComplaintShownSchema(Schema):
    complaint_id = fields.String(required=True)
    number = fields.String(required=True)
    tag = fields.String(required=True)
    tag_zh = fields.String(required=True, allow_none=True)
    company = fields.String(required=True, allow_none=True)
    content = fields.String(required=True, allow_none=True)
    call_at = fields.String(required=True)
    call_type = fields.String(required=True, allow_none=True)
    duration_seconds = fields.Float(required=True, allow_none=True)
    reporter_region = fields.String(required=True, allow_none=True)
    received_at = fields.String(required=True)
    agency = fields.String(required=True)
    case_id = fields.String(required=True, allow_none=True)
    dnc_registered = fields.Boolean(required=True)
    dnc_violation = fields.Boolean(required=True)


class MyComplaintSchema(ComplaintShownSchema):
    case_status = fields.String(required=True, allow_none=True)


class MyComplaintsSchema(Schema):
    complaints = fields.List(fields.Nested(MyComplaintSchema), required=True)


class CaseComplaintSchema(ComplaintShownSchema):
    contact = fields.String(required=True, allow_none=True, metadata={
        "description": "how to reach the reporter, given with their consent; otherwise null"})


class CompanyCountSchema(Schema):
    company = fields.String(required=True)
    complaints = fields.Integer(required=True)


class TagCountSchema(Schema):
    tag = fields.String(required=True)
    complaints = fields.Integer(required=True)


class CaseSummarySchema(Schema):
    case_id = fields.String(required=True)
    number = fields.String(required=True)
    agency = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["received", "verifying", "upheld", "rejected"]))
    complaints = fields.Integer(required=True)
    companies = fields.List(fields.Nested(CompanyCountSchema), required=True)
    categories = fields.List(fields.Nested(TagCountSchema), required=True)
    first_complaint_at = fields.String(required=True)
    last_complaint_at = fields.String(required=True)
    last_activity_at = fields.String(required=True, metadata={"description": "the last complaint or step"})
    dnc_violations = fields.Integer(required=True)
    verified_company = fields.String(required=True, allow_none=True)
    upheld_at = fields.String(required=True, allow_none=True)


class CasesSchema(Schema):
    cases = fields.List(fields.Nested(CaseSummarySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class CrowdSchema(Schema):
    verdict = fields.String(required=True, validate=_VERDICT)
    label = fields.String(required=True, allow_none=True)
    reporters = fields.Integer(required=True)


class CaseAuditSchema(Schema):
    at = fields.String(required=True)
    actor = fields.String(required=True, metadata={"description": "the key's name; empty for a complaint's own step"})
    from_ = fields.String(required=True, data_key="from", metadata={"description": "the status before; empty when opened"})
    to = fields.String(required=True)
    note = fields.String(required=True)
    from_agency = fields.String()
    to_agency = fields.String()



class CaseSchema(CaseSummarySchema):
    crowd = fields.Nested(CrowdSchema, required=True)
    complaints_shown = fields.List(fields.Nested(CaseComplaintSchema), required=True)
    audit = fields.List(fields.Nested(CaseAuditSchema), required=True)


class ExposureEntrySchema(Schema):
    company = fields.String(required=True, metadata={"description": "the name the agency verified"})
    numbers = fields.List(fields.String(), required=True)
    categories = fields.List(fields.String(), required=True)
    agencies = fields.List(fields.String(), required=True)
    upheld_cases = fields.Integer(required=True)
    first_upheld_at = fields.String(required=True)
    last_upheld_at = fields.String(required=True)


class ExposureSchema(Schema):
    exposure = fields.List(fields.Nested(ExposureEntrySchema), required=True)


class AgencySchema(Schema):
    id = fields.String(required=True)
    name_zh = fields.String(required=True)
    name_en = fields.String(required=True)


class RoutingSchema(Schema):
    agencies = fields.List(fields.Nested(AgencySchema), required=True)
    routes = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    default = fields.String(required=True)


class MonthDaySchema(Schema):
    date = fields.String(required=True)
    complaints = fields.Integer(required=True, allow_none=True, metadata={"description": "null: under 10"})


class CategoryShareSchema(Schema):
    tag = fields.String(required=True)
    name_en = fields.String(required=True)
    name_zh = fields.String(required=True)
    complaints = fields.Integer(required=True, allow_none=True)
    share = fields.Float(required=True, allow_none=True)


class AgencyCasesSchema(Schema):
    agency = fields.String(required=True)
    name_zh = fields.String(required=True)
    name_en = fields.String(required=True)
    received = fields.Integer(required=True, allow_none=True)
    upheld = fields.Integer(required=True, allow_none=True)


class MonthlyReportSchema(Schema):
    month = fields.String(required=True)
    suppressed_below = fields.Integer(required=True)
    complaints = fields.Integer(required=True, allow_none=True)
    complaints_per_day = fields.List(fields.Nested(MonthDaySchema), required=True)
    category_shares = fields.List(fields.Nested(CategoryShareSchema), required=True)
    numbers_newly_marked = fields.Integer(required=True, allow_none=True)
    ring_once_detected = fields.Integer(required=True, allow_none=True)
    cases = fields.List(fields.Nested(AgencyCasesSchema), required=True)
    exposure = fields.List(fields.Nested(ExposureEntrySchema), required=True)
    do_not_call = fields.Dict(required=True, metadata={"description": "the month's Do-Not-Call figures, suppressed"})
