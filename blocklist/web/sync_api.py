"""HTTP for phones and CDNs: lists, manifests, snapshots, deltas and the signing keys."""
from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request

from .. import publish
from ..errors import DeltaUnavailable, InvalidVersion, UnknownList, UnknownVersion
from ..lists import PUBLISHED
from ..store import Store
from . import responses as r
from .routes import Doc, route

bp = Blueprint("sync", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"  # addressed by version: never changes
SHORT = "public, max-age=60"  # "the latest": changes with the next publish
MANIFEST_CACHE = "public, max-age=30, must-revalidate"
MAX_VERSION = 10**18 - 1  # the largest version a query may name; far beyond any real count of publishes
VERSION_TEXT = re.compile(r"[0-9]{1,18}")  # what a version in a query may look like: up to MAX_VERSION
VERSION = {"type": "integer", "minimum": 0, "maximum": MAX_VERSION}  # a list version in a query, documented
LIST_NAME = {"in": "path", "name": "name", "required": True, "schema": {"type": "string", "enum": list(PUBLISHED)}}
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _store() -> Store:
    return current_app.extensions["callmark"]


def _state(name: str) -> dict[str, str]:
    if name not in PUBLISHED:
        raise UnknownList(f"there is no list {name!r}", {"lists": list(PUBLISHED)})
    state = publish.list_state(_store(), name)
    if not state:
        raise UnknownList(f"list {name!r} has not been published yet; retry after the next publish")
    return state


def _consistent(name: str, key: str) -> tuple[dict[str, str], bytes | None]:
    """The list's state and the artifact at key, read in one MULTI.

    A publish committing between two separate reads would pair one version's headers with
    the next version's bytes, and a cache would keep that pair as immutable.
    """
    pipe = _store().binary.pipeline(transaction=True)
    pipe.hgetall(_store().keys.list_state(name))
    pipe.get(key)
    raw, body = pipe.execute()
    if isinstance(raw, list):  # redis-py's cluster transactions return HGETALL unparsed: a flat list
        raw = dict(zip(raw[::2], raw[1::2]))
    return {k.decode(): v.decode() for k, v in raw.items()}, body


def _version_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() and int() also take "²", "١٢٣", "+1", " 1" and "1_0".
    if not VERSION_TEXT.fullmatch(raw):
        raise InvalidVersion(f"{name} must be an integer from 0 to {MAX_VERSION}", {name: raw})
    return int(raw)


def _binary(body: bytes, etag: str, cache: str) -> Response:
    response = Response(body, mimetype="application/octet-stream")
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache
    return response.make_conditional(request)


@route(bp, "GET", "/v1/lists", doc=Doc("The published lists", 200, r.ListsSchema, tags=("sync",)))
def lists():
    out = []
    for name in PUBLISHED:
        state = publish.list_state(_store(), name)
        count = int(state.get("count", 0))
        size = int(state.get("snapshot_bytes", 0))
        out.append({
            "name": name,
            "version": int(state["version"]) if state else None,
            "generation": int(state["generation"]) if state else None,
            "count": count,
            "capacity": int(state["capacity"]) if state else None,
            "error_rate": float(state["error_rate"]) if state else None,
            "snapshot_bytes": size or None,
            "bytes_per_number": round(size / count, 2) if count else None,
            "bytes_per_number_when_full": round(size / int(state["capacity"]), 2) if state else None,
            "published_at": publish.manifest_of(state)["published_at"] if state else None,
        })
    return jsonify(lists=out)


@route(bp, "GET", "/v1/lists/<name>/manifest",
       doc=Doc("The signed manifest of the latest version", 200, r.ManifestSchema, errors=(304, 404), tags=("sync",),
               parameters=(LIST_NAME,)))
def manifest(name: str):
    state = _state(name)
    body = '{"manifest":' + state["manifest"] + ',"signature":"' + state["signature"] + '"}'
    response = Response(body, mimetype="application/json")
    response.set_etag(f"{state['version']}-{state['key_id']}")
    response.headers["Cache-Control"] = MANIFEST_CACHE
    return response.make_conditional(request)


def _latest_only(name: str, wanted: int | None, state: dict[str, str]) -> None:
    if wanted is not None and wanted != int(state["version"]):
        raise UnknownVersion(f"version {wanted} of {name!r} is not kept; only the latest snapshot is",
                             {"latest": int(state["version"])})


@route(bp, "GET", "/v1/lists/<name>/snapshot",
       doc=Doc("The filter, byte for byte pybloom-live's BloomFilter.tofile", 200, content=BINARY,
               errors=(304, 400, 404), tags=("sync",),
               parameters=(LIST_NAME, {"in": "query", "name": "version", "schema": VERSION})))
def snapshot(name: str):
    state = _state(name)
    wanted = _version_arg("version")
    _latest_only(name, wanted, state)
    if request.if_none_match.contains(state["sha256"]):
        return _binary(b"", state["sha256"], IMMUTABLE if wanted is not None else SHORT)
    state, body = _consistent(name, _store().keys.list_snapshot(name))
    _latest_only(name, wanted, state)  # a publish may have landed in between
    return _binary(body, state["sha256"], IMMUTABLE if wanted is not None else SHORT)


@route(bp, "GET", "/v1/lists/<name>/delta",
       doc=Doc("Golomb-Rice coded bit flips to the latest version (docs/PROTOCOL.md)", 200, content=BINARY,
               errors=(304, 400, 404, 410), tags=("sync",),
               parameters=(LIST_NAME, {"in": "query", "name": "from", "required": True, "schema": VERSION},
                           {"in": "query", "name": "to", "schema": VERSION})))
def delta(name: str):
    state = _state(name)
    latest = int(state["version"])
    start = _version_arg("from")
    end = _version_arg("to")
    if start is None:
        raise InvalidVersion("from is required: the version the client holds")
    if end is not None and end != latest:
        raise DeltaUnavailable(f"deltas lead to the latest version ({latest}); fetch the manifest again",
                               {"latest": latest})
    if start == latest:
        response = Response(status=304)
        response.headers["Cache-Control"] = SHORT
        return response
    etag = f"{start}-{latest}"
    if request.if_none_match.contains(etag):
        return _binary(b"", etag, IMMUTABLE if end is not None else SHORT)
    state, body = _consistent(name, _store().keys.list_delta(name, start))
    if int(state["version"]) != latest:  # published meanwhile: the body leads elsewhere
        raise DeltaUnavailable("the list moved on while reading; fetch the manifest again",
                               {"latest": int(state["version"])})
    if body is None or start > latest:
        raise DeltaUnavailable(f"no delta from version {start}: it is older than the retention, of another "
                               "generation or unknown; fetch the snapshot", {"latest": latest})
    return _binary(body, etag, IMMUTABLE if end is not None else SHORT)


@route(bp, "GET", "/v1/keys/signing",
       doc=Doc("The Ed25519 key that signs manifests, and its rotation", 200, r.SigningKeysSchema, tags=("sync",)))
def signing_keys():
    response = jsonify(current_app.extensions["callmark.signing"].document())  # read from Redis every time
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
