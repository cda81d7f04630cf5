"""The HTTP API (v1). Routes are thin: parse, call one domain function, answer."""
from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.routing import PathConverter

from .. import calls, devices, feed, lookup, metrics, moderation, numbers, reports, reputation, stats, tags
from ..errors import CallMarkError, NotReady, ValidationFailed
from ..store import Store
from . import ratelimit
from .auth import device_or_key_required, device_required, key_required
from .schemas import (AuditQuerySchema, BatchSchema, CallEventSchema, ClearOverrideSchema, DisputeSchema,
                      FeedQuerySchema, NumberQuerySchema, OverrideSchema, ReportSchema, ResolveSchema,
                      StatsQuerySchema)

bp = Blueprint("api", __name__)

MAX_BODY = 64 * 1024  # bytes for a single request body
MAX_BATCH_BODY = 1024 * 1024  # bytes for a batch of reports

_report_schema = ReportSchema()
_batch_schema = BatchSchema()
_number_query = NumberQuerySchema()


def _store() -> Store:
    return current_app.extensions["callmark"]


@bp.before_app_request
def limit_body_size():
    # Werkzeug answers 413 as soon as the body would pass the limit, before reading it all.
    request.max_content_length = MAX_BATCH_BODY if request.path == "/v1/reports/batch" else MAX_BODY


def _json_body(optional: bool = False) -> dict:
    """The body as a JSON object, sent as application/json (any charset); `optional`: no body reads as {}."""
    if optional and not request.get_data(cache=True):
        return {}
    if request.mimetype != "application/json":  # a form or text post is not JSON by accident
        raise UnsupportedMediaType("send the body as JSON, with Content-Type: application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the parser's depth limit; none of our bodies nests more than three deep
        raise ValidationFailed("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body


@bp.after_app_request
def no_sniffing(response: Response) -> Response:
    # Browsers must take every answer as the type it says (JSON, NDJSON, text), never guess HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/healthz")
def healthz():
    _store().redis.ping()  # a Redis error becomes 503 store_unavailable
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready for traffic: Redis answers, the signing key is loaded and every list is published."""
    from ..lists import PUBLISHED

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
    if not current_app.extensions.get("callmark.signing"):
        checks["signing_key"] = "not loaded"
    if any(value != "ok" for value in checks.values()):
        raise NotReady(checks)
    return jsonify(status="ready", checks=checks)


@bp.get("/v1/tags")
def list_tags():
    return jsonify(tags=tags.describe())


@bp.post("/v1/devices")
def register_device():
    device_id, token = devices.register(_store(), request.remote_addr)
    return jsonify(device_id=device_id, token=token), 201


@bp.post("/v1/reports")
@device_required
def post_report():
    try:
        item = _report_schema.load(_json_body())
        result = reports.submit(_store(), g.device, request.remote_addr, item)
    except (CallMarkError, ValidationError) as exc:
        metrics.count_report(error=getattr(exc, "code", "validation_error"))
        raise
    metrics.count_report(duplicate=result["duplicate"])
    return jsonify(result), 201


@bp.post("/v1/reports/batch")
@device_required
def post_batch():
    body = _batch_schema.load(_json_body())
    # Every valid item spends the device's report budget; the items past it answer 429.
    results = reports.submit_batch(_store(), g.device, request.remote_addr, body["reports"], _report_schema,
                                   admit=ratelimit.admit)
    for result in results:
        metrics.count_report(duplicate=result.get("duplicate", False),
                                   error=result["error"]["code"] if "error" in result else None)
    accepted = sum(1 for r in results if r["status"] == 201)
    return jsonify(results=results, accepted=accepted, rejected=len(results) - accepted)


class _WithdrawnNumber(PathConverter):
    """Any path but `batch`: that is the batch route, which must not offer DELETE (OPTIONS, 405)."""

    regex = r"(?!batch\Z)[^/].*?"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("withdrawn_number", _WithdrawnNumber))


@bp.delete("/v1/reports/<withdrawn_number:number>")
@device_required
def delete_report(number: str):
    query = _number_query.load(request.args)
    return jsonify(reports.withdraw(_store(), g.device_id, number, query.get("region")))


def _number(raw: str, region: str | None) -> str:
    return numbers.normalize(raw, region or _store().config.default_region)


@bp.post("/v1/calls")
@device_required
def post_call():
    event = CallEventSchema().load(_json_body())
    return jsonify(calls.record(_store(), g.device, request.remote_addr, event)), 202


@bp.get("/v1/numbers/<path:number>")
@device_or_key_required
def get_number(number: str):
    query = _number_query.load(request.args) if request.args else {}  # the hot path has no query
    number, store = _number(number, query.get("region")), _store()
    # The read shares its round trip with the request's rate-limit counter.
    reply = ratelimit.counted(lambda pipe: reputation.queue_read(store, pipe, number, store.clock()))
    return jsonify(reputation.from_reply(number, reply))


@bp.delete("/v1/devices/me")
@device_required
def erase_device():
    withdrawn = devices.erase(_store(), g.device_id)
    return jsonify(erased=True, votes_withdrawn=withdrawn)


@bp.get("/v1/lookup/prefix/<prefix>")
@device_required
def lookup_prefix(prefix: str):
    return jsonify(lookup.by_prefix(_store(), prefix))


@bp.post("/v1/disputes")
@device_required
def open_dispute():
    body = DisputeSchema().load(_json_body())
    number = _number(body["number"], body.get("region"))
    return jsonify(moderation.open_dispute(_store(), number, body["reason"], body["contact"])), 201


# --- app vendors -------------------------------------------------------------------------

@bp.get("/v1/feed")
@key_required("feed")
def get_feed():
    query = FeedQuerySchema().load(request.args)
    return jsonify(feed.page(_store(), query.get("cursor"), query["limit"]))


@bp.get("/v1/feed/export")
@key_required("feed")
def export_feed():
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    response = Response(feed.export(_store(), compress=compress), mimetype="application/x-ndjson")
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response


# --- operators ---------------------------------------------------------------------------

@bp.put("/v1/admin/numbers/<path:number>/override")
@key_required("admin")
def put_override(number: str):
    body = OverrideSchema().load(_json_body())
    return jsonify(moderation.set_override(_store(), _number(number, request.args.get("region")),
                                           body["verdict"], body["reason"], g.api_key.name))


@bp.delete("/v1/admin/numbers/<path:number>/override")
@key_required("admin")
def delete_override(number: str):
    body = ClearOverrideSchema().load(_json_body(optional=True))
    return jsonify(moderation.set_override(_store(), _number(number, request.args.get("region")),
                                           None, body["reason"], g.api_key.name))


@bp.post("/v1/admin/numbers/<path:number>/release")
@key_required("admin")
def release_hold(number: str):
    body = ClearOverrideSchema().load(_json_body(optional=True))
    return jsonify(moderation.release_hold(_store(), _number(number, request.args.get("region")),
                                           body["reason"], g.api_key.name))


@bp.get("/v1/admin/held")
@key_required("admin")
def list_held():
    return jsonify(numbers=moderation.held_numbers(_store()))


@bp.get("/v1/stats")
@key_required("admin")
def get_stats():
    query = StatsQuerySchema().load(request.args)
    return jsonify(stats.summary(_store(), query.get("from"), query.get("to")))


@bp.get("/v1/admin/audit")
@key_required("admin")
def get_audit():
    query = AuditQuerySchema().load(request.args)
    number = _number(query["number"], None) if query.get("number") else None
    return jsonify(entries=moderation.audit_log(_store(), number, query["limit"]))


@bp.get("/v1/admin/disputes")
@key_required("admin")
def list_disputes():
    return jsonify(disputes=moderation.open_disputes(_store()))


@bp.post("/v1/admin/disputes/<dispute_id>/resolve")
@key_required("admin")
def resolve_dispute(dispute_id: str):
    body = ResolveSchema().load(_json_body())
    return jsonify(moderation.resolve_dispute(_store(), dispute_id, body["override"], body["note"],
                                              g.api_key.name))
