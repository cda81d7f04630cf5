"""The HTTP API (v1). Routes are thin: parse, call one domain function, answer; each is declared once
(blocklist/web/routes.py): its path, auth, rate limits and documented answers."""
from __future__ import annotations

from typing import Callable

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.routing import PathConverter

from .. import (calls, devices, erasure, feed, lookup, metrics, moderation, numbers, reports, reputation, stats,
               tags)
from ..errors import CallMarkError, NotReady
from ..lists import PUBLISHED
from ..store import Store
from . import responses as r
from .auth import ADMIN_KEY, DEVICE, DEVICE_OR_KEY, FEED_KEY
from .body import json_body
from .ratelimit import CALLS, DISPUTES, ERASURE, FEED, LOOKUPS, REGISTRATION, REPORTS, admit, counted
from .routes import PER_ITEM, SHARED_ROUND_TRIP, Doc, route
from .streaming import streamed
from .schemas import (AuditQuerySchema, BatchSchema, CallEventSchema, ClearOverrideSchema, DisputeSchema,
                      FeedQuerySchema, NumberQuerySchema, OverrideSchema, ReportSchema, ResolveSchema,
                      StatsQuerySchema)

bp = Blueprint("api", __name__)

MAX_BODY = 64 * 1024  # bytes for a single request body
MAX_BATCH_BODY = 1024 * 1024  # bytes for a batch of reports

_report_schema = ReportSchema()
_batch_schema = BatchSchema()
_number_query = NumberQuerySchema()
NUMBER = {"in": "path", "name": "number", "required": True, "schema": {"type": "string"},
          "description": "a phone number as shown; national format uses the default region"}


def _store() -> Store:
    return current_app.extensions["callmark"]


@bp.before_app_request
def limit_body_size():
    # Werkzeug answers 413 as soon as the body would pass the limit, before reading it all.
    request.max_content_length = MAX_BATCH_BODY if request.path == "/v1/reports/batch" else MAX_BODY


@bp.after_app_request
def no_sniffing(response: Response) -> Response:
    # Browsers must take every answer as the type it says (JSON, NDJSON, text), never guess HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@route(bp, "GET", "/healthz", doc=Doc("200 when Redis answers, 503 otherwise", 200, r.HealthSchema,
                                      tags=("operations",)))
def healthz():
    _store().redis.ping()  # a Redis error becomes 503 store_unavailable
    return jsonify(status="ok")


@route(bp, "GET", "/readyz", doc=Doc("200 when Redis answers, the signing key is loaded and every list is published; "
                                     "503 not_ready otherwise", 200, r.ReadySchema, tags=("operations",)))
def readyz():
    """Ready for traffic: Redis answers and every list is published. (create_app loads the signing
    key, or fails: its check is always ok.)"""
    store = _store()
    checks = {"redis": "ok", "signing_key": "ok", "lists": "ok"}
    try:
        pipe = store.redis.pipeline(transaction=False)
        for name in PUBLISHED:
            pipe.hexists(store.keys.list_state(name), "version")
        unpublished = [name for name, published in zip(PUBLISHED, pipe.execute()) if not published]
    except (redis.ConnectionError, redis.TimeoutError):
        checks["redis"], unpublished = "not answering", []
    if unpublished:
        checks["lists"] = "not yet published: " + ", ".join(unpublished)
    if any(value != "ok" for value in checks.values()):
        raise NotReady(checks)
    return jsonify(status="ready", checks=checks)


@route(bp, "GET", "/v1/tags", doc=Doc("The tag taxonomy", 200, r.TagsSchema, tags=("reports",)))
def list_tags():
    return jsonify(tags=tags.describe())


@route(bp, "POST", "/v1/devices", limits=REGISTRATION,
       doc=Doc("Register a device; the token is shown once", 201, r.DeviceSchema, errors=(429,), tags=("devices",)))
def register_device():
    device_id, token = devices.register(_store(), request.remote_addr)
    return jsonify(device_id=device_id, token=token), 201


@route(bp, "POST", "/v1/reports", auth=DEVICE, limits=REPORTS,
       doc=Doc("Tag a number (one vote per device and number)", 201, r.ReportResultSchema, request=ReportSchema,
               errors=(400, 413, 429), tags=("reports",)))
def post_report():
    result = counted_report(lambda: reports.submit(_store(), g.device, request.remote_addr,
                                                   _report_schema.load(json_body())))
    return jsonify(result), 201


def counted_report(submit: Callable[[], dict]) -> dict:
    """`submit()` a report (or a complaint), counting it, or its error, in the metrics."""
    try:
        result = submit()
    except (CallMarkError, ValidationError) as exc:
        metrics.count_report(error=getattr(exc, "code", "validation_error"))
        raise
    metrics.count_report(duplicate=result["duplicate"])
    return result


@route(bp, "POST", "/v1/reports/batch", auth=DEVICE, limits=REPORTS, counting=PER_ITEM,
       doc=Doc("Up to 500 reports; valid items are kept even when others fail; each valid item spends one report "
               "of the device's budget, and those past it answer 429 in their item result (the answer then "
               "carries Retry-After)", 200, r.BatchResultSchema, request=BatchSchema, errors=(400, 413, 429),
               tags=("reports",)))
def post_batch():
    body = _batch_schema.load(json_body())
    # Every valid item spends the device's report budget; the items past it answer 429.
    results = reports.submit_batch(_store(), g.device, request.remote_addr, body["reports"], _report_schema,
                                   admit=admit)
    for result in results:
        metrics.count_report(duplicate=result.get("duplicate", False),
                                   error=result["error"]["code"] if "error" in result else None)
    accepted = sum(1 for r in results if r["status"] == 201)
    return jsonify(results=results, accepted=accepted, rejected=len(results) - accepted)


class _WithdrawnNumber(PathConverter):
    """Any path but `batch`: that is the batch route, which must not offer DELETE (OPTIONS, 405)."""

    regex = r"(?!batch\Z)[^/].*?"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("withdrawn_number", _WithdrawnNumber))


@route(bp, "DELETE", "/v1/reports/<withdrawn_number:number>", auth=DEVICE, limits=REPORTS,
       doc=Doc("Withdraw this device's vote on a number", 200, r.WithdrawSchema, query=NumberQuerySchema,
               errors=(400, 429), tags=("reports",), parameters=(NUMBER,)))
def delete_report(number: str):
    query = _number_query.load(request.args)
    return jsonify(reports.withdraw(_store(), g.device_id, number, query.get("region")))


def _number(raw: str, region: str | None) -> str:
    return numbers.normalize(raw, region or _store().config.default_region)


@route(bp, "POST", "/v1/calls", auth=DEVICE, limits=CALLS,
       doc=Doc("Report a call event to the ring-once detector", 202, r.CallRecordedSchema, request=CallEventSchema,
               errors=(400, 413, 429), tags=("reports",)))
def post_call():
    event = CallEventSchema().load(json_body())
    return jsonify(calls.record(_store(), g.device, request.remote_addr, event)), 202


@route(bp, "GET", "/v1/numbers/<path:number>", auth=DEVICE_OR_KEY, limits=LOOKUPS, counting=SHARED_ROUND_TRIP,
       doc=Doc("A number's reputation", 200, r.ReputationSchema, query=NumberQuerySchema, errors=(400, 429),
               tags=("reputation",), parameters=(NUMBER,)))
def get_number(number: str):
    query = _number_query.load(request.args) if request.args else {}  # the hot path has no query
    number, store = _number(number, query.get("region")), _store()
    # The read shares its round trip with the request's rate-limit counter.
    reply = counted(lambda pipe: reputation.queue_read(store, pipe, number, store.clock()))
    return jsonify(reputation.from_reply(number, reply))


@route(bp, "DELETE", "/v1/devices/me", auth=DEVICE, limits=ERASURE,
       doc=Doc("Erase this device: withdraw all its votes, remove its Do-Not-Call registrations, detach its "
               "complaints (they stay as evidence, naming no device)", 200, r.EraseSchema, errors=(429,), tags=("devices",)))
def erase_device():
    withdrawn = erasure.erase(_store(), g.device_id)
    return jsonify(erased=True, votes_withdrawn=withdrawn)


@route(bp, "GET", "/v1/lookup/prefix/<prefix>", auth=DEVICE, limits=LOOKUPS,
       doc=Doc("Private lookup by hash prefix (k-anonymity)", 200, r.PrefixSchema, errors=(400, 429),
               tags=("reputation",),
               parameters=({"in": "path", "name": "prefix", "required": True,
                            "schema": {"type": "string", "pattern": f"^{lookup.PREFIX_PATTERN.pattern}$"},
                            "description": "first 4 or 5 lowercase hex digits of SHA-256(E.164)"},)))
def lookup_prefix(prefix: str):
    return jsonify(lookup.by_prefix(_store(), prefix))


@route(bp, "POST", "/v1/disputes", auth=DEVICE, limits=DISPUTES,
       doc=Doc("A number's owner disputes its verdict", 201, r.DisputeOpenedSchema, request=DisputeSchema,
               errors=(400, 409, 413, 429), tags=("moderation",)))
def open_dispute():
    body = DisputeSchema().load(json_body())
    number = _number(body["number"], body.get("region"))
    return jsonify(moderation.open_dispute(_store(), number, body["reason"], body["contact"])), 201


# --- app vendors -------------------------------------------------------------------------

@route(bp, "GET", "/v1/feed", auth=FEED_KEY, limits=FEED,
       doc=Doc("Reputation changes since the cursor, oldest first", 200, r.FeedPageSchema, query=FeedQuerySchema,
               errors=(400, 410, 429), tags=("feed",)))
def get_feed():
    query = FeedQuerySchema().load(request.args)
    return jsonify(feed.page(_store(), query.get("cursor"), query["limit"]))


@route(bp, "GET", "/v1/feed/export", auth=FEED_KEY, limits=FEED,
       doc=Doc("Every number with a verdict as NDJSON, then the cursor to continue from", 200,
               content={"application/x-ndjson": {"schema": {"type": "string"}}}, errors=(429,), tags=("feed",)))
def export_feed():
    return streamed(feed.export(_store()), "application/x-ndjson")


# --- operators ---------------------------------------------------------------------------

@route(bp, "PUT", "/v1/admin/numbers/<path:number>/override", auth=ADMIN_KEY,
       doc=Doc("Pin a number's verdict (audited)", 200, r.ReputationSchema, request=OverrideSchema,
               errors=(400, 413), tags=("moderation",), parameters=(NUMBER,)))
def put_override(number: str):
    body = OverrideSchema().load(json_body())
    return jsonify(moderation.set_override(_store(), _number(number, request.args.get("region")),
                                           body["verdict"], body["reason"], g.api_key.name))


@route(bp, "DELETE", "/v1/admin/numbers/<path:number>/override", auth=ADMIN_KEY,
       doc=Doc("Clear the override (audited)", 200, r.ReputationSchema, request=ClearOverrideSchema,
               body_required=False, errors=(400, 413), tags=("moderation",), parameters=(NUMBER,)))
def delete_override(number: str):
    body = ClearOverrideSchema().load(json_body(optional=True))
    return jsonify(moderation.set_override(_store(), _number(number, request.args.get("region")),
                                           None, body["reason"], g.api_key.name))


@route(bp, "POST", "/v1/admin/numbers/<path:number>/release", auth=ADMIN_KEY,
       doc=Doc("End the burst guard's hold on a number (audited); 409 when it is not held", 200, r.ReputationSchema,
               request=ClearOverrideSchema, body_required=False, errors=(400, 409, 413), tags=("moderation",),
               parameters=(NUMBER,)))
def release_hold(number: str):
    body = ClearOverrideSchema().load(json_body(optional=True))
    return jsonify(moderation.release_hold(_store(), _number(number, request.args.get("region")),
                                           body["reason"], g.api_key.name))


@route(bp, "GET", "/v1/admin/held", auth=ADMIN_KEY,
       doc=Doc("Numbers the burst guard holds at warn for review", 200, r.HeldSchema, tags=("moderation",)))
def list_held():
    return jsonify(numbers=moderation.held_numbers(_store()))


@route(bp, "GET", "/v1/stats", auth=ADMIN_KEY,
       doc=Doc("Reports per day, tag shares, most reported numbers, lists, publishes, disputes and overrides for "
               "a period", 200, r.StatsSchema, query=StatsQuerySchema, errors=(400,), tags=("moderation",)))
def get_stats():
    query = StatsQuerySchema().load(request.args)
    return jsonify(stats.summary(_store(), query.get("from"), query.get("to")))


@route(bp, "GET", "/v1/admin/audit", auth=ADMIN_KEY,
       doc=Doc("Overrides and dispute resolutions, newest first", 200, r.AuditSchema, query=AuditQuerySchema,
               errors=(400,), tags=("moderation",)))
def get_audit():
    query = AuditQuerySchema().load(request.args)
    number = _number(query["number"], None) if query.get("number") else None
    return jsonify(entries=moderation.audit_log(_store(), number, query["limit"]))


@route(bp, "GET", "/v1/admin/disputes", auth=ADMIN_KEY,
       doc=Doc("Open disputes", 200, r.DisputesSchema, tags=("moderation",)))
def list_disputes():
    return jsonify(disputes=moderation.open_disputes(_store()))


@route(bp, "POST", "/v1/admin/disputes/<dispute_id>/resolve", auth=ADMIN_KEY,
       doc=Doc("Resolve a dispute, optionally with an override", 200, r.DisputeResolvedSchema, request=ResolveSchema,
               errors=(400, 404, 409, 413), tags=("moderation",),
               parameters=({"in": "path", "name": "dispute_id", "required": True, "schema": {"type": "string"}},)))
def resolve_dispute(dispute_id: str):
    body = ResolveSchema().load(json_body())
    return jsonify(moderation.resolve_dispute(_store(), dispute_id, body["override"], body["note"],
                                              g.api_key.name))
