"""Complaints over HTTP: phones file them (each is also the device's vote) and follow their
cases; regulators (API keys of scope `regulator`, bound to one agency; admin keys see every
agency) list, read and move their cases and export the complaints; anyone reads the exposure of
upheld cases. Routes are thin: blocklist/complaints.py, cases.py and complaint_export.py do
the work.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from flask import Blueprint, Response, g, jsonify, request

from .. import cases, complaint_export, complaints, monthly, routing, stats
from ..store import Store
from . import responses as r
from .api import _store, counted_report
from .auth import DEVICE, REGULATOR_KEY
from .body import json_body
from .ratelimit import LOOKUPS, PUBLIC, REPORTS
from .routes import Doc, route
from .schemas import (CasesQuerySchema, ComplaintSchema, ExportQuerySchema, MonthlyReportQuerySchema,
                      TransitionSchema)
from .streaming import streamed

bp = Blueprint("complaints", __name__)

CASE_ID = {"in": "path", "name": "case_id", "required": True, "schema": {"type": "string"}}
EXPORT_DAYS = 366  # the longest period one export covers
MIMETYPES = {"csv": "text/csv", "ftc": "text/csv", "ndjson": "application/x-ndjson"}

_complaint = ComplaintSchema()
_transition = TransitionSchema()
_cases_query = CasesQuerySchema()
_export_query = ExportQuerySchema()
_report_query = MonthlyReportQuerySchema()


# --- the phone user ------------------------------------------------------------------------

@route(bp, "POST", "/v1/complaints", auth=DEVICE, limits=REPORTS,
       doc=Doc("File a complaint (the 12321 form's fields): it is also this device's vote with its tag, as "
               "POST /v1/reports, and is routed to the agency responsible for the tag's sector", 201,
               r.ComplaintFiledSchema, request=ComplaintSchema, errors=(400, 413, 429), tags=("complaints",)))
def file_complaint():
    answer = counted_report(lambda: complaints.file(_store(), g.device, request.remote_addr,
                                                    _complaint.load(json_body())))
    return jsonify(answer), 201


@route(bp, "GET", "/v1/complaints/me", auth=DEVICE, limits=LOOKUPS,
       doc=Doc("This device's complaints, newest first, with their cases' status", 200, r.MyComplaintsSchema,
               errors=(429,), tags=("complaints",)))
def my_complaints():
    return jsonify(complaints=complaints.of_device(_store(), g.device_id))


@route(bp, "GET", "/v1/agencies",
       doc=Doc("The agencies complaints are routed to, and which tag goes to which", 200, r.RoutingSchema,
               tags=("complaints",)))
def agencies():
    return jsonify(routing.cached(_store().config.routing_file).describe())


# --- the regulator -------------------------------------------------------------------------

@route(bp, "GET", "/v1/regulator/cases", auth=REGULATOR_KEY,
       doc=Doc("The key's agency's cases (an admin key: every agency's), newest activity first", 200, r.CasesSchema,
               query=CasesQuerySchema, errors=(400,), tags=("regulators",)))
def list_cases():
    query = _cases_query.load(request.args)
    return jsonify(cases.listing(_store(), g.api_key, query.get("status"), query.get("from"), query.get("to"),
                                 query.get("cursor"), query["limit"]))


@route(bp, "GET", "/v1/regulator/cases/<case_id>", auth=REGULATOR_KEY,
       doc=Doc("A case with its newest complaints (reporters withheld: their region, and a contact they agreed to "
               "give), its audit trail and the crowd's verdict", 200, r.CaseSchema, tags=("regulators",),
               parameters=(CASE_ID,)))
def read_case(case_id: str):
    return jsonify(cases.read(_store(), g.api_key, case_id))


@route(bp, "POST", "/v1/regulator/cases/<case_id>/transition", auth=REGULATOR_KEY,
       doc=Doc("Move a case: received -> verifying -> upheld (naming the verified company) or rejected, or "
               "transferred to another agency; an illegal step is 409", 200, r.CaseSchema,
               request=TransitionSchema, errors=(400, 409, 413), tags=("regulators",), parameters=(CASE_ID,)))
def transition_case(case_id: str):
    body = _transition.load(json_body())
    return jsonify(cases.transition(_store(), g.api_key, case_id, body["to"], body["note"], body.get("company"),
                                    body.get("agency")))


def _period(store: Store, raw_from: str | None, raw_to: str | None) -> tuple[float, float]:
    """[start, end) in unix seconds of the inclusive UTC days asked for (default the last 30)."""
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    first, last = stats.period(raw_from, raw_to, today, max_days=EXPORT_DAYS)
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc).timestamp()
    return start, start + ((last - first).days + 1) * 86400


@route(bp, "GET", "/v1/regulator/complaints/export", auth=REGULATOR_KEY,
       doc=Doc("The complaints received in a period, oldest first, streamed: csv or ndjson (the 12321 form's "
               "fields, with case and status) or ftc (the FTC Reported Calls columns); gzip with "
               "Accept-Encoding: gzip", 200,
               content={media: {"schema": {"type": "string"}} for media in sorted(set(MIMETYPES.values()))},
               query=ExportQuerySchema, errors=(400,), tags=("regulators",)))
def export_complaints():
    query = _export_query.load(request.args)
    store = _store()
    start, end = _period(store, query.get("from"), query.get("to"))
    agency = None if g.api_key.scope == "admin" else g.api_key.agency
    response = streamed(complaint_export.export(store, agency, start, end, query["format"]),
                        MIMETYPES[query["format"]])
    if query["format"] != "ndjson":
        response.headers["Content-Disposition"] = f'attachment; filename="complaints-{query["format"]}.csv"'
    return response


# --- everyone ------------------------------------------------------------------------------

@route(bp, "GET", "/v1/public/exposure", limits=PUBLIC,
       doc=Doc("Companies whose cases an agency upheld, by the name the agency verified, with their numbers, "
               "categories and dates; never what the crowd alone claims", 200, r.ExposureSchema,
               errors=(429,), tags=("public",)))
def exposure():
    response = jsonify(exposure=cases.exposure(_store()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


MONTH = {"in": "path", "name": "month", "required": True, "description": "YYYY-MM",
         "schema": {"type": "string", "pattern": r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"}}


@route(bp, "GET", "/v1/public/reports/<month>", limits=PUBLIC,
       doc=Doc("The month's public report: complaints in total and per day, category shares, numbers newly marked, "
               "ring-once numbers detected, cases per agency, the exposure of the month and the Do-Not-Call "
               "figures; counts under 10 withheld. A past month's is frozen (its ETag never changes)", 200,
               content={"application/json": {"schema": r.MonthlyReportSchema},
                        "text/csv": {"schema": {"type": "string"}}},
               query=MonthlyReportQuerySchema, errors=(304, 400, 429), tags=("public",), parameters=(MONTH,)))
def monthly_report(month: str):
    query = _report_query.load(request.args)
    shown, frozen = monthly.report(_store(), month)
    if query["format"] == "csv":
        response = Response(monthly.report_csv(shown), mimetype="text/csv")
    else:
        response = jsonify(shown)
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest())
    response.headers["Cache-Control"] = "public, max-age=86400, immutable" if frozen else "public, max-age=300"
    return response.make_conditional(request)
