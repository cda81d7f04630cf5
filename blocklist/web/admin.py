"""The operator dashboard at /admin: server-rendered figures and moderation behind an admin key.

Logging in with an admin API key opens a session kept in Redis; the browser's cookie holds
only the session's random id. Every form that changes something carries the session's CSRF
token; the login form, which has no session yet, carries a token signed from a random cookie
(a signed double submit), so a failed login stores nothing. The key behind a session is
checked again on every request, so revoking it ends its sessions.
"""
from __future__ import annotations

import hmac
import re
import secrets
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError

from .. import apikeys, cases, dnc_stats, moderation, stats, tags
from ..complaints import STATUSES
from ..errors import CallMarkError, Forbidden, Unauthorized, ValidationFailed
from ..keyed import keyed
from .schemas import ResolveSchema

bp = Blueprint("admin", __name__, url_prefix="/admin")

COOKIE = "callmark_admin"  # the session id, nothing else
LOGIN_COOKIE = "callmark_admin_login"  # the random value the login form's token is signed from
SESSION_TTL = 8 * 3600  # seconds a session lives after its last request
LOGIN_TTL = 3600  # seconds the login form's token stays valid in the browser
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32): session ids and login cookies
OVERRIDES = {"none": None, "allow": "allow", "block": "block"}  # the resolve form's choices
DAY_CHART = (720, 160)  # width and height of the reports-per-day bars
SHARE_CHART = (720, 24, 300)  # width, row height, label column of the tag-share bars


def _store():
    return current_app.extensions["callmark"]


def _login_token(value: str) -> str:
    return keyed(_store().secret, "admin-login", value).hex()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _secure_cookies() -> bool:
    """Cookies go over TLS only: always in production (TLS ends at the load balancer; see
    docs/DEPLOY.md), else when this request came over https (as gunicorn and ProxyFix see it)."""
    return request.is_secure or current_app.config["CALLMARK"].profile == "production"


def _set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/admin", httponly=True, samesite="Strict",
                        secure=_secure_cookies())


@bp.before_request
def load_session() -> None:
    """Set g.admin to the live session of this browser, or None; refresh its lifetime."""
    g.csp_nonce = secrets.token_urlsafe(16)
    g.admin = None
    session_id = request.cookies.get(COOKIE, "")
    if not TOKEN.fullmatch(session_id):
        return
    store = _store()
    key = store.keys.admin_session(session_id)
    session = store.redis.hgetall(key)
    if not session:
        return
    record = apikeys.record(_store(), session["name"])
    if record is None or record["hash"] != session["key_hash"] or record["scope"] != "admin":
        store.redis.delete(key)  # the key was revoked (or its name reused): the session ends
        return
    store.redis.expire(key, SESSION_TTL)
    g.admin = {**session, "id": session_id}


def page_headers(response: Response, style_source: str) -> None:
    """What every page of the service sends: styles only from `style_source`, no script, no
    framing, no referrer, no sniffing."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; style-src {style_source}; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"


@bp.after_request
def security_headers(response: Response) -> Response:
    nonce = f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else ""  # absent if an earlier hook failed
    page_headers(response, f"'self'{nonce}")
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_page(error: str | None = None, status: int = 200) -> Response:
    value = request.cookies.get(LOGIN_COOKIE, "")
    if not TOKEN.fullmatch(value):
        value = secrets.token_urlsafe(32)
    response = make_response(render_template("admin/login.html", csrf_token=_login_token(value), error=error),
                             status)
    _set_cookie(response, LOGIN_COOKIE, value, LOGIN_TTL)
    return response


def _message(text: str, status: int) -> Response:
    return make_response(render_template("admin/message.html", message=text), status)


def session_required(view):
    """A logged-in session, and for a POST the session's CSRF token in the form (else 403)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.admin is None:
            return _login_page("Log in first: there is no session, or it has ended.", 401)
        if request.method == "POST" and not _same(request.form.get("csrf_token", ""), g.admin["csrf"]):
            return _message("This form is stale or forged (its CSRF token does not match); "
                            "reload the page and try again.", 403)
        return view(*args, **kwargs)

    return wrapper


@bp.post("/login")
def login():
    value = request.cookies.get(LOGIN_COOKIE, "")
    if not TOKEN.fullmatch(value) or not _same(request.form.get("csrf_token", ""), _login_token(value)):
        return _login_page("The login form expired; please try again.", 403)
    store = _store()
    try:
        api_key = apikeys.authenticate(store, request.form.get("key", "").strip(), "admin")
    except Unauthorized:
        return _login_page("That is not a valid API key.", 401)
    except Forbidden:
        return _login_page("That key has no admin scope.", 403)
    record = apikeys.record(_store(), api_key.name)
    if record is None:  # revoked in between
        return _login_page("That is not a valid API key.", 401)
    if g.admin:  # a fresh id on every login: an old session never carries over
        store.redis.delete(store.keys.admin_session(g.admin["id"]))
    session_id = secrets.token_urlsafe(32)
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(_store().keys.admin_session(session_id), mapping={"name": api_key.name, "scope": api_key.scope,
                                                "key_hash": record["hash"], "csrf": secrets.token_urlsafe(32)})
    pipe.expire(_store().keys.admin_session(session_id), SESSION_TTL)
    pipe.execute()
    response = redirect(url_for("admin.dashboard"), 303)
    _set_cookie(response, COOKIE, session_id, None)
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@bp.post("/logout")
@session_required
def logout():
    _store().redis.delete(_store().keys.admin_session(g.admin["id"]))
    response = redirect(url_for("admin.dashboard"), 303)
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="Strict", secure=_secure_cookies())
    return response


@bp.get("")
def dashboard():
    if g.admin is None:
        return _login_page()
    store, error = _store(), None
    try:
        summary = stats.summary(store, request.args.get("from") or None, request.args.get("to") or None)
    except ValidationFailed as exc:
        error = f"{exc.message}; showing the default period instead."
        summary = stats.summary(store)
    dnc = dnc_stats.summary(store, summary["from"], summary["to"])
    flash = g.admin.get("flash")
    if flash:
        store.redis.hdel(store.keys.admin_session(g.admin["id"]), "flash")
    html = render_template("admin/dashboard.html", s=summary, error=error, flash=flash, admin=g.admin,
                           days=day_bars(summary["reports_per_day"]), shares=share_bars(summary["tag_shares"]),
                           day_chart=DAY_CHART, share_chart=SHARE_CHART, dnc=dnc,
                           dnc_new=day_bars(dnc["per_day"], "new"), dnc_scrubbed=day_bars(dnc["per_day"], "numbers_scrubbed"),
                           dnc_refusals=share_bars(dnc["refusals"] + [{
                               "category": "accept_windows", "name_en": "With accept windows", "name_zh": "设有接听时段",
                               **dnc["accept_windows"]}]),
                           dnc_violations=share_bars(violation_shares(dnc["violations"])),
                           dnc_callable=percent(dnc["callable_share"]),
                           cases=cases.counts(store), case_statuses=STATUSES)
    return make_response(html, 400 if error else 200)


@bp.post("/disputes/<dispute_id>/resolve")
@session_required
def resolve_dispute(dispute_id: str):
    choice = request.form.get("override", "none")
    try:
        if choice not in OVERRIDES:
            raise ValidationError({"override": ["must be none, allow or block"]})
        body = ResolveSchema().load({"override": OVERRIDES[choice], "note": request.form.get("note", "")})
        result = moderation.resolve_dispute(_store(), dispute_id, body["override"], body["note"], g.admin["name"])
        flash = f"Dispute {dispute_id} of {result['number']} resolved ({choice})."
    except ValidationError as exc:
        flash = "Not resolved: " + "; ".join(f"{field} {' '.join(msgs)}" for field, msgs in exc.messages.items())
    except CallMarkError as exc:
        flash = f"Not resolved: {exc.message}"
    _store().redis.hset(_store().keys.admin_session(g.admin["id"]), "flash", flash)
    period = {k: v for k in ("from", "to") if (v := request.form.get(k))}
    return redirect(url_for("admin.dashboard", **period), 303)


def day_bars(per_day: list[dict[str, Any]], field: str = "reports",
             chart: tuple[int, int] = DAY_CHART) -> list[dict[str, Any]]:
    """Geometry of a per-day bar chart of `field` (reports by default) in a `chart` of (width,
    height): one bar per day, scaled to the busiest; each bar's figure is also its `value`."""
    width, height = chart
    peak = max((d[field] for d in per_day), default=0) or 1
    step = width / max(len(per_day), 1)
    bars = []
    for i, day in enumerate(per_day):
        h = round(day[field] / peak * height, 2)
        bars.append({**day, "value": day[field], "x": round(i * step, 2), "w": round(max(step - 1, 0.5), 2),
                     "y": round(height - h, 2), "h": h})
    return bars


def violation_shares(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The categories with Do-Not-Call violations, as rows of the share chart (share of all)."""
    total = sum(v["violations"] for v in violations)
    return sorted(({**v, "name_en": tags.BY_CODE[v["category"]].name_en if v["category"] in tags.BY_CODE
                    else v["category"], "name_zh": tags.BY_CODE[v["category"]].name_zh
                    if v["category"] in tags.BY_CODE else "", "share": v["violations"] / total}
                   for v in violations if v["violations"]), key=lambda v: -v["violations"])


def share_bars(shares: list[dict[str, Any]], chart: tuple[int, int, int] = SHARE_CHART, tail: int = 70,
               names: tuple[str, ...] = ("name_en", "name_zh")) -> list[dict[str, Any]]:
    """Geometry of a share chart (width, row height, label column): one row per tag, the largest
    share filling the row but for `tail` left for the figure after the bar; each row is labelled
    with its `names` fields."""
    width, row, label = chart
    room = width - label - tail
    top = max((s["share"] for s in shares), default=0) or 1
    return [{**s, "label": " ".join(s[name] for name in names), "percent": percent(s["share"]), "y": i * row,
             "w": round(max(s["share"] / top * room, 1), 2)} for i, s in enumerate(shares)]


def percent(share: float) -> str:
    """A share as the 12321 centre writes it: 0.309 -> '30.9 %'."""
    return f"{share * 100:.1f} %"
