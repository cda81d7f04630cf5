"""The HTTP API (v1). Routes are thin: parse, call one domain function, answer."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from .. import devices, numbers, reports, tags
from ..errors import ValidationFailed
from ..reputation import lookup
from ..store import Store
from .auth import device_required
from .schemas import BatchSchema, NumberQuerySchema, ReportSchema

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


def _json_body() -> dict:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body


@bp.get("/healthz")
def healthz():
    _store().redis.ping()  # a Redis error becomes 503 store_unavailable
    return jsonify(status="ok")


@bp.get("/v1/tags")
def list_tags():
    return jsonify(tags=tags.describe())


@bp.post("/v1/devices")
def register_device():
    device_id, token = devices.register(_store())
    return jsonify(device_id=device_id, token=token), 201


@bp.post("/v1/reports")
@device_required
def post_report():
    item = _report_schema.load(_json_body())
    return jsonify(reports.submit(_store(), g.device_id, item)), 201


@bp.post("/v1/reports/batch")
@device_required
def post_batch():
    body = _batch_schema.load(_json_body())
    results = reports.submit_batch(_store(), g.device_id, body["reports"], _report_schema)
    accepted = sum(1 for r in results if r["status"] == 201)
    return jsonify(results=results, accepted=accepted, rejected=len(results) - accepted)


@bp.delete("/v1/reports/<path:number>")
@device_required
def delete_report(number: str):
    query = _number_query.load(request.args)
    return jsonify(reports.withdraw(_store(), g.device_id, number, query.get("region")))


@bp.get("/v1/numbers/<path:number>")
@device_required
def get_number(number: str):
    store = _store()
    query = _number_query.load(request.args)
    return jsonify(lookup(store, numbers.normalize(number, query.get("region") or store.config.default_region)))
