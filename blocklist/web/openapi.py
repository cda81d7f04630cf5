"""The OpenAPI 3 document, generated from the route declarations (blocklist/web/routes.py) and the
marshmallow schemas they name, and a readable page of it."""
from __future__ import annotations

import copy
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app, jsonify, render_template_string
from werkzeug.routing import Rule

from . import responses as r
from .auth import SCHEMES
from .routes import REGISTRY, Route, route

bp = Blueprint("openapi", __name__)

ERROR_TEXT = {
    304: "not modified", 400: "bad input", 401: "missing or invalid credentials", 403: "credentials lack the scope",
    404: "not found", 405: "method not allowed", 409: "conflict", 410: "gone", 413: "body too large",
    415: "the body is not sent as application/json (or, where text/csv is taken, as UTF-8 text/csv)",
    429: "rate limited (Retry-After says when to retry)", 503: "the data store is not answering",
}
# A variable of a werkzeug rule, `<converter(arguments):name>` or `<name>`: OpenAPI writes it `{name}`.
RULE_VARIABLE = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def _json(schema) -> dict:
    return {"application/json": {"schema": schema}}


def _operation(declared: Route) -> dict:
    """One operation: its answer, its errors (always in the error shape) and what it takes."""
    doc, auth = declared.doc, declared.auth
    content = doc.content or _json(doc.response)
    responses = {str(doc.ok): {"description": "OK", "content": content} if (doc.response or doc.content) else
                 {"description": "not modified"}}
    errors = (*doc.errors, 415) if doc.request else doc.errors  # every JSON body is refused unless it says it is one
    for status in (*errors, 503, *(auth.errors if auth else ())):
        responses[str(status)] = ({"description": ERROR_TEXT[status]} if status == 304 else
                                  {"description": ERROR_TEXT[status], "content": _json(r.ErrorSchema)})
    op = {"summary": doc.summary, "responses": responses, "tags": list(doc.tags)}
    if auth:
        op["security"] = list(auth.security)
    if doc.request:
        op["requestBody"] = {"required": doc.body_required,
                             "content": {**_json(doc.request), **(doc.request_content or {})}}
    if doc.query:
        op["parameters"] = [{"in": "query", "schema": doc.query}]
    return op


def _path(rule: Rule, declared: Route) -> str:
    """The rule's path as OpenAPI writes it; every variable in it must be a documented parameter."""
    documented = {p["name"] for p in declared.doc.parameters if p["in"] == "path"}
    if documented != set(rule.arguments):
        raise ValueError(f"{declared.endpoint}: its path parameters are {sorted(rule.arguments)}, "
                         f"its documentation names {sorted(documented)}")
    return RULE_VARIABLE.sub(r"{\1}", rule.rule)


def build_spec(app: Flask) -> APISpec:
    """The document of every route `app` serves that is declared with a Doc (blocklist/web/routes.py)."""
    spec = APISpec(title="CallMark", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "Crowd-tagged caller reputation and compact blocklists. "
                                        "Every error is {\"error\": {\"code\", \"message\", \"details\"}}."})
    for name, scheme in SCHEMES.items():
        spec.components.security_scheme(name, {"type": "http", "scheme": "bearer", "description": scheme})
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    paths: dict[str, tuple[tuple[dict, ...], dict]] = {}  # path -> its parameters, its operations by method
    for declared in REGISTRY.values():
        if declared.doc is None or declared.endpoint not in rules:
            continue
        path = _path(rules[declared.endpoint], declared)
        parameters, operations = paths.setdefault(path, (declared.doc.parameters, {}))
        if parameters != declared.doc.parameters:
            raise ValueError(f"{declared.endpoint}: the routes of {path} document its parameters differently")
        operations[declared.method.lower()] = _operation(declared)
    for path, (parameters, operations) in paths.items():
        if "{" in path:  # a path parameter the router cannot place (a newline, say) is a 404
            for op in operations.values():
                op["responses"].setdefault("404", {"description": ERROR_TEXT[404], "content": _json(r.ErrorSchema)})
        spec.path(path=path, operations=operations, parameters=copy.deepcopy(list(parameters)) or None)
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


@route(bp, "GET", "/openapi.json", doc=None)  # the document and its page are not in it
def openapi_json():
    return jsonify(current_app.extensions["callmark.openapi"])


@route(bp, "GET", "/docs", doc=None)
def docs_page():
    spec = current_app.extensions["callmark.openapi"]
    operations = [(path, method, op) for path, item in spec["paths"].items()
                  for method, op in item.items() if method != "parameters"]
    tags = sorted({t for _, _, op in operations for t in op["tags"]})
    return render_template_string(PAGE, spec=spec, operations=operations, tags=tags)


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.extensions["callmark.openapi"] = build_spec(app).to_dict()
