"""The OpenAPI 3 document, generated from the marshmallow schemas, and a readable page of it."""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify, render_template_string

from ..lists import PUBLISHED
from ..lookup import PREFIX_PATTERN
from . import responses as r
from . import schemas as s
from .sync_api import MAX_VERSION

bp = Blueprint("openapi", __name__)

DEVICE, FEED_KEY, ADMIN_KEY, METRICS = "device", "feed_key", "admin_key", "metrics_token"
VERSION = {"type": "integer", "minimum": 0, "maximum": MAX_VERSION}  # a list version in a query
LIST_NAME = {"in": "path", "name": "name", "required": True, "schema": {"type": "string", "enum": list(PUBLISHED)}}
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
ERROR_TEXT = {
    304: "not modified", 400: "bad input", 401: "missing or invalid credentials", 403: "credentials lack the scope",
    404: "not found", 405: "method not allowed", 409: "conflict", 410: "gone", 413: "body too large",
    415: "the body is not sent as application/json",
    429: "rate limited (Retry-After says when to retry)", 503: "the data store is not answering",
}


def _json(schema) -> dict:
    return {"application/json": {"schema": schema}}


def _op(summary: str, ok: int, body, *, security=None, request=None, query=None, errors=(), content=None,
        tags=(), body_required: bool = True) -> dict:
    """One operation: its answer, its errors (always in the error shape) and what it takes."""
    responses = {str(ok): {"description": "OK", "content": content or _json(body)} if (body or content) else
                 {"description": "not modified"}}
    if request:  # every JSON body is refused unless it says it is one
        errors = (*errors, 415)
    for status in (*errors, 503):
        responses[str(status)] = ({"description": ERROR_TEXT[status]} if status == 304 else
                                  {"description": ERROR_TEXT[status], "content": _json(r.ErrorSchema)})
    if security:
        for status in (401, 403) if security != [{DEVICE: []}] else (401,):
            responses[str(status)] = {"description": ERROR_TEXT[status], "content": _json(r.ErrorSchema)}
    op = {"summary": summary, "responses": responses, "tags": list(tags)}
    if security:
        op["security"] = security
    if request:
        op["requestBody"] = {"required": body_required, "content": _json(request)}
    if query:
        op["parameters"] = [{"in": "query", "schema": query}]
    return op


def _number_param(name: str = "number") -> dict:
    return {"in": "path", "name": name, "required": True, "schema": {"type": "string"},
            "description": "a phone number as shown; national format uses the default region"}


def build_spec() -> APISpec:
    spec = APISpec(title="CallMark", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "Crowd-tagged caller reputation and compact blocklists. "
                                        "Every error is {\"error\": {\"code\", \"message\", \"details\"}}."})
    for name, scheme in ((DEVICE, "device token from POST /v1/devices"),
                         (FEED_KEY, "API key, scope feed or admin"), (ADMIN_KEY, "API key, scope admin"),
                         (METRICS, "CALLMARK_METRICS_TOKEN, when it is set")):
        spec.components.security_scheme(name, {"type": "http", "scheme": "bearer", "description": scheme})
    device, feed, admin = [{DEVICE: []}], [{FEED_KEY: []}], [{ADMIN_KEY: []}]
    device_or_key = [{DEVICE: []}, {FEED_KEY: []}]
    paths = {
        "/healthz": {"get": _op("200 when Redis answers, 503 otherwise", 200, r.HealthSchema, tags=["operations"])},
        "/readyz": {"get": _op("200 when Redis answers, the signing key is loaded and every list is published; "
                               "503 not_ready otherwise", 200, r.ReadySchema, tags=["operations"])},
        "/metrics": {"get": {**_op("Prometheus metrics (text format); with CALLMARK_METRICS_TOKEN set, only for "
                                   "that bearer token", 200, None, tags=["operations"], errors=(401,),
                                   content={"text/plain": {"schema": {"type": "string"}}}),
                             "security": [{}, {METRICS: []}]}},
        "/v1/tags": {"get": _op("The tag taxonomy", 200, r.TagsSchema, tags=["reports"])},
        "/v1/devices": {"post": _op("Register a device; the token is shown once", 201, r.DeviceSchema,
                                    errors=(429,), tags=["devices"])},
        "/v1/devices/me": {"delete": _op("Erase this device and withdraw all its votes", 200, r.EraseSchema,
                                         security=device, errors=(429,), tags=["devices"])},
        "/v1/reports": {"post": _op("Tag a number (one vote per device and number)", 201, r.ReportResultSchema,
                                    security=device, request=s.ReportSchema, errors=(400, 413, 429),
                                    tags=["reports"])},
        "/v1/reports/batch": {"post": _op("Up to 500 reports; valid items are kept even when others fail; each valid "
                                          "item spends one report of the device's budget, and those past it answer "
                                          "429 in their item result (the answer then carries Retry-After)", 200,
                                          r.BatchResultSchema, security=device, request=s.BatchSchema,
                                          errors=(400, 413, 429), tags=["reports"])},
        "/v1/reports/{number}": {"parameters": [_number_param()],
                                 "delete": _op("Withdraw this device's vote on a number", 200, r.WithdrawSchema,
                                               security=device, query=s.NumberQuerySchema, errors=(400, 429),
                                               tags=["reports"])},
        "/v1/calls": {"post": _op("Report a call event to the ring-once detector", 202, r.CallRecordedSchema,
                                  security=device, request=s.CallEventSchema, errors=(400, 413, 429),
                                  tags=["reports"])},
        "/v1/numbers/{number}": {"parameters": [_number_param()],
                                 "get": _op("A number's reputation", 200, r.ReputationSchema, security=device_or_key,
                                            query=s.NumberQuerySchema, errors=(400, 429), tags=["reputation"])},
        "/v1/lookup/prefix/{prefix}": {
            "parameters": [{"in": "path", "name": "prefix", "required": True,
                            "schema": {"type": "string", "pattern": f"^{PREFIX_PATTERN.pattern}$"},
                            "description": "first 4 or 5 lowercase hex digits of SHA-256(E.164)"}],
            "get": _op("Private lookup by hash prefix (k-anonymity)", 200, r.PrefixSchema, security=device,
                       errors=(400, 429), tags=["reputation"])},
        "/v1/disputes": {"post": _op("A number's owner disputes its verdict", 201, r.DisputeOpenedSchema,
                                     security=device, request=s.DisputeSchema, errors=(400, 409, 413, 429),
                                     tags=["moderation"])},
        "/v1/feed": {"get": _op("Reputation changes since the cursor, oldest first", 200, r.FeedPageSchema,
                                security=feed, query=s.FeedQuerySchema, errors=(400, 410, 429), tags=["feed"])},
        "/v1/feed/export": {"get": _op("Every number with a verdict as NDJSON, then the cursor to continue from",
                                       200, None, security=feed, errors=(429,), tags=["feed"],
                                       content={"application/x-ndjson": {"schema": {"type": "string"}}})},
        "/v1/admin/numbers/{number}/override": {
            "parameters": [_number_param()],
            "put": _op("Pin a number's verdict (audited)", 200, r.ReputationSchema, security=admin,
                       request=s.OverrideSchema, errors=(400, 413), tags=["moderation"]),
            "delete": _op("Clear the override (audited)", 200, r.ReputationSchema, security=admin,
                          request=s.ClearOverrideSchema, body_required=False, errors=(400, 413),
                          tags=["moderation"])},
        "/v1/admin/numbers/{number}/release": {
            "parameters": [_number_param()],
            "post": _op("End the burst guard's hold on a number (audited)", 200, r.ReputationSchema,
                        security=admin, request=s.ClearOverrideSchema, body_required=False, errors=(400, 413),
                        tags=["moderation"])},
        "/v1/admin/held": {"get": _op("Numbers the burst guard holds at warn for review", 200, r.HeldSchema,
                                      security=admin, tags=["moderation"])},
        "/v1/stats": {"get": _op("Reports per day, tag shares, most reported numbers, lists, publishes, disputes and "
                                 "overrides for a period", 200, r.StatsSchema, security=admin,
                                 query=s.StatsQuerySchema, errors=(400,), tags=["moderation"])},
        "/v1/admin/audit": {"get": _op("Overrides and dispute resolutions, newest first", 200, r.AuditSchema,
                                       security=admin, query=s.AuditQuerySchema, errors=(400,),
                                       tags=["moderation"])},
        "/v1/admin/disputes": {"get": _op("Open disputes", 200, r.DisputesSchema, security=admin,
                                          tags=["moderation"])},
        "/v1/admin/disputes/{dispute_id}/resolve": {
            "parameters": [{"in": "path", "name": "dispute_id", "required": True, "schema": {"type": "string"}}],
            "post": _op("Resolve a dispute, optionally with an override", 200, r.DisputeResolvedSchema,
                        security=admin, request=s.ResolveSchema, errors=(400, 404, 409, 413),
                        tags=["moderation"])},
        "/v1/lists": {"get": _op("The published lists", 200, r.ListsSchema, tags=["sync"])},
        "/v1/lists/{name}/manifest": {
            "parameters": [LIST_NAME],
            "get": _op("The signed manifest of the latest version", 200, r.ManifestSchema,
                       errors=(304, 404), tags=["sync"])},
        "/v1/lists/{name}/snapshot": {
            "parameters": [LIST_NAME, {"in": "query", "name": "version", "schema": VERSION}],
            "get": _op("The filter, byte for byte pybloom-live's BloomFilter.tofile", 200, None, content=BINARY,
                       errors=(304, 400, 404), tags=["sync"])},
        "/v1/lists/{name}/delta": {
            "parameters": [LIST_NAME, {"in": "query", "name": "from", "required": True, "schema": VERSION},
                           {"in": "query", "name": "to", "schema": VERSION}],
            "get": _op("Golomb-Rice coded bit flips to the latest version (docs/PROTOCOL.md)", 200, None,
                       content=BINARY, errors=(304, 400, 404, 410), tags=["sync"])},
        "/v1/keys/signing": {"get": _op("The Ed25519 key that signs manifests, and its rotation", 200,
                                        r.SigningKeysSchema, tags=["sync"])},
    }
    for path, operations in paths.items():
        parameters = operations.pop("parameters", None)
        if "{" in path:  # a path parameter the router cannot place (a newline, say) is a 404
            for op in operations.values():
                op["responses"].setdefault("404", {"description": ERROR_TEXT[404], "content": _json(r.ErrorSchema)})
        spec.path(path=path, operations=operations, parameters=parameters)
    return spec


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CallMark API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ddd}code{background:#f4f4f4;padding:0 .2em}
.m{display:inline-block;min-width:4.5em;font-weight:bold}.s{color:#666}</style></head><body>
<h1>CallMark API {{ spec.info.version }}</h1><p>{{ spec.info.description }}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI {{ spec.openapi }}).</p>
{% for tag in tags %}<h2>{{ tag }}</h2>
{% for path, method, op in operations if tag in op.tags %}<p><span class="m">{{ method|upper }}</span>
<code>{{ path }}</code> — {{ op.summary }}<br><span class="s">answers:
{% for status, resp in op.responses.items() %}{{ status }} {{ resp.description }}{% if not loop.last %}, {% endif %}{% endfor %}
{% if op.security %}· auth: {{ op.security|map('list')|map('first')|join(' or ') }}{% endif %}</span></p>
{% endfor %}{% endfor %}
</body></html>"""


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(current_app.extensions["callmark.openapi"])


@bp.get("/docs")
def docs_page():
    spec = current_app.extensions["callmark.openapi"]
    operations = [(path, method, op) for path, item in spec["paths"].items()
                  for method, op in item.items() if method != "parameters"]
    tags = sorted({t for _, _, op in operations for t in op["tags"]})
    return render_template_string(PAGE, spec=spec, operations=operations, tags=tags)


def init_app(app) -> None:
    app.extensions["callmark.openapi"] = build_spec().to_dict()
    app.register_blueprint(bp)
