"""A route is declared once, beside its view: `@route(bp, "POST", "/v1/reports", auth=DEVICE,
limits=REPORTS, doc=Doc(...))` registers the Flask rule, wraps the view in its auth and records
the declaration in REGISTRY. ratelimit.py counts each request by its route's limits and
openapi.py writes the document's paths from the same declarations, so neither keeps a table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from flask import Blueprint, Flask

from .auth import Auth

# How a route's request spends its limits (ratelimit.py).
PER_REQUEST = "per request"  # counted before the view runs
SHARED_ROUND_TRIP = "shared round trip"  # counted in the view's own Redis round trip: ratelimit.counted
PER_ITEM = "per item"  # the request only checks its budget; its items spend it: ratelimit.admit

Limits = tuple[tuple[str, Callable[[], Optional[str]]], ...]  # (limit name, whose requests count)


@dataclass(frozen=True)
class Doc:
    """What the OpenAPI document says of a route: its answers and what it takes."""

    summary: str
    ok: int  # the status of a successful answer
    response: Any = None  # the successful answer's schema (JSON), or
    content: Optional[dict] = None  # its content by media type, when it is not one JSON schema
    errors: tuple[int, ...] = ()  # beside 503, 415 for a JSON body, 404 for a path variable and the auth's
    tags: tuple[str, ...] = ()
    request: Any = None  # the JSON body's schema
    request_content: Optional[dict] = None  # other media types the body may take, beside JSON
    body_required: bool = True
    query: Any = None  # the query's schema
    parameters: tuple[dict, ...] = ()  # the path's parameters: each path variable, and hand-written query ones


@dataclass(frozen=True)
class Route:
    """One route's declaration."""

    endpoint: str
    method: str
    path: str
    auth: Optional[Auth]
    limits: Limits
    counting: str
    doc: Optional[Doc]  # None: declared, and on purpose not in the document


REGISTRY: dict[str, Route] = {}  # endpoint -> its declaration, in the order they were declared


def route(bp: Optional[Blueprint], method: str, path: str, *, doc: Optional[Doc], auth: Optional[Auth] = None,
          limits: Limits = (), counting: str = PER_REQUEST) -> Callable:
    """Declare the view's route on `bp` (None: on the app, through `serve`)."""
    if counting not in (PER_REQUEST, SHARED_ROUND_TRIP, PER_ITEM):
        raise ValueError(f"unknown counting {counting!r}")

    def decorate(view: Callable) -> Callable:
        endpoint = f"{bp.name}.{view.__name__}" if bp is not None else view.__name__
        declared = Route(endpoint, method, path, auth, limits, counting, doc)
        if REGISTRY.setdefault(endpoint, declared) != declared:
            raise ValueError(f"{endpoint} is declared twice")
        served = auth.require(view) if auth is not None else view
        served.route = declared
        if bp is not None:
            bp.add_url_rule(path, view.__name__, served, methods=[method])
        return served

    return decorate


def serve(app: Flask, view: Callable) -> None:
    """Serve a view declared with `route(None, ...)` on `app`."""
    declared = view.route
    app.add_url_rule(declared.path, declared.endpoint, view, methods=[declared.method])
