"""The /admin dashboard: sessions, CSRF, moderation and the figures, through the Flask test client."""
from __future__ import annotations

import html
import os
import re

import pytest

from blocklist import apikeys, importer, moderation, stats
from blocklist.keys import Keys
from blocklist.web import admin
from tests.support import redis_state

SESSIONS = Keys(1)  # key names of admin sessions (they do not depend on the buckets)

FTC_FILE = "dnc-reported-calls-2021-07-07.csv"  # one of the daily files
NUMBER = "+8613800138000"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SHARE = re.compile(r'<g class="tag-share" data-tag="(\w+)">.*?<text x="0"[^>]*>([^<]+)</text>.*?'
                   r'<text class="percent"[^>]*>([^<]+)</text>', re.S)


@pytest.fixture
def admin_key(store) -> str:
    return apikeys.create(store, "ops-admin", "admin")


def csrf_of(page: str) -> str:
    return CSRF.search(page).group(1)


def login(client, key: str):
    form = client.get("/admin")
    return client.post("/admin/login", data={"key": key, "csrf_token": csrf_of(form.get_data(as_text=True))})


def session_id(client) -> str | None:
    cookie = client.get_cookie(admin.COOKIE, path="/admin")
    return cookie.value if cookie else None


@pytest.fixture
def browser(client, admin_key):
    """A test client logged in with the admin key."""
    assert login(client, admin_key).status_code == 303
    return client


@pytest.fixture
def dispute(store) -> str:
    return moderation.open_dispute(store, NUMBER, "this is my shop's number", "owner@example.com")["dispute_id"]


def page(client, url: str = "/admin") -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def resolve(client, dispute_id: str, **form):
    return client.post(f"/admin/disputes/{dispute_id}/resolve", data=form)


def is_login_form(text: str) -> bool:
    return 'action="/admin/login"' in text and 'name="key"' in text and "Open disputes" not in text


# --- logging in ---------------------------------------------------------------------------------

def test_without_a_session_the_page_is_the_login_form(client):
    response = client.get("/admin")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert is_login_form(response.get_data(as_text=True))
    assert session_id(client) is None


def test_login_with_an_admin_key_sets_only_a_random_session_cookie(client, admin_key, redis_client):
    response = login(client, admin_key)
    assert response.status_code == 303 and response.headers["Location"] == "/admin"
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith(admin.COOKIE + "="))
    assert {"HttpOnly", "SameSite=Strict", "Path=/admin"} <= set(session_cookie.split("; "))
    assert "Secure" not in session_cookie  # plain http here; see the https test
    sid = session_id(client)
    assert admin.TOKEN.match(sid)
    stored = redis_client.hgetall(SESSIONS.admin_session(sid))
    assert stored["name"] == "ops-admin" and stored["scope"] == "admin" and len(stored["csrf"]) >= 32
    assert 0 < redis_client.ttl(SESSIONS.admin_session(sid)) <= admin.SESSION_TTL
    dashboard = page(client)
    assert "Open disputes" in dashboard and "ops-admin" in dashboard
    secret_part = admin_key.removeprefix(apikeys.KEY_TEXT_PREFIX)
    for text in (*cookies, dashboard, *stored.values()):
        assert secret_part not in text


def test_two_logins_get_different_sessions(app, admin_key):
    first, second = app.test_client(), app.test_client()
    login(first, admin_key)
    login(second, admin_key)
    assert session_id(first) != session_id(second)


def test_over_https_the_cookies_are_secure(client, admin_key):
    form = client.get("/admin", base_url="https://localhost")
    assert "Secure" in form.headers["Set-Cookie"]
    response = client.post("/admin/login", base_url="https://localhost",
                           data={"key": admin_key, "csrf_token": csrf_of(form.get_data(as_text=True))})
    session_cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(admin.COOKIE + "="))
    assert "Secure" in session_cookie.split("; ")


@pytest.mark.parametrize("kind, status", [("feed", 403), ("wrong", 401), ("empty", 401), ("device", 401)])
def test_feed_keys_and_wrong_keys_get_the_form_again_and_store_nothing(client, store, redis_client, new_device,
                                                                       kind, status):
    key = {"feed": apikeys.create(store, "acme", "feed"),
           "wrong": apikeys.KEY_TEXT_PREFIX + "x" * 43, "empty": "",
           "device": new_device()["Authorization"].split()[1]}[kind]
    before = redis_state(redis_client)
    response = login(client, key)
    assert response.status_code == status
    assert is_login_form(response.get_data(as_text=True)) and 'class="note error"' in response.get_data(as_text=True)
    assert session_id(client) is None
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_login_without_its_form_token_is_refused(client, admin_key, redis_client, token):
    client.get("/admin")
    before = redis_state(redis_client)
    response = client.post("/admin/login", data={"key": admin_key, **({"csrf_token": token} if token else {})})
    assert response.status_code == 403 and is_login_form(response.get_data(as_text=True))
    assert session_id(client) is None and redis_state(redis_client) == before


def test_a_login_form_token_works_only_with_its_own_cookie(app, admin_key):
    mine, theirs = app.test_client(), app.test_client()
    token = csrf_of(theirs.get("/admin").get_data(as_text=True))
    mine.get("/admin")  # a login cookie of its own, which the stolen token was not signed from
    assert mine.post("/admin/login", data={"key": admin_key, "csrf_token": token}).status_code == 403


def test_a_forged_session_cookie_gets_the_login_form(client, admin_key):
    client.set_cookie(admin.COOKIE, "A" * 43, path="/admin")
    assert is_login_form(page(client))
    client.set_cookie(admin.COOKIE, "../../etc", path="/admin")
    assert is_login_form(page(client))


def test_every_admin_answer_carries_the_security_headers(browser, client):
    for response in (client.get("/admin"), client.get("/admin?from=nope"), resolve(client, "abc")):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'none'" in csp and "unsafe-inline" not in csp
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        if response.status_code != 303:
            assert f'<style nonce="{nonce}">' in response.get_data(as_text=True)
    assert "<script" not in page(client)


def test_a_request_refreshes_the_session_lifetime(browser, client, redis_client):
    key = SESSIONS.admin_session(session_id(client))
    redis_client.expire(key, 60)
    page(client)
    assert redis_client.ttl(key) > admin.SESSION_TTL - 60


# --- CSRF and resolving disputes ----------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "wrong", "another session's"])
def test_a_resolve_without_the_sessions_csrf_token_is_403_and_changes_nothing(app, browser, client, admin_key,
                                                                             dispute, store, redis_client, token):
    if token == "another session's":
        other = app.test_client()
        login(other, admin_key)
        token = csrf_of(page(other))
    form = {"override": "allow", "note": "verified", **({"csrf_token": token} if token is not None else {})}
    before = redis_state(redis_client)
    response = resolve(client, dispute, **form)
    assert response.status_code == 403 and "CSRF" in response.get_data(as_text=True)
    assert redis_state(redis_client) == before
    assert [d["dispute_id"] for d in moderation.open_disputes(store)] == [dispute]


def test_resolving_with_the_token_closes_the_dispute_and_audits_it(browser, client, dispute, store):
    before = page(client)
    assert f'id="dispute-{dispute}"' in before
    response = resolve(client, dispute, csrf_token=csrf_of(before), override="allow", note="owner verified")
    assert response.status_code == 303 and response.headers["Location"] == "/admin"
    after = page(client, response.headers["Location"])
    assert f"Dispute {dispute} of {NUMBER} resolved (allow)." in after
    assert f'id="dispute-{dispute}"' not in after and "No open disputes." in after
    assert moderation.open_disputes(store) == []
    audit = moderation.audit_log(store, NUMBER)
    assert [(e["action"], e["by"]) for e in audit] == [("dispute_resolved", "ops-admin"), ("override", "ops-admin")]
    assert audit[0]["reason"] == "owner verified" and audit[1]["verdict"] == "allow"
    overrides = after.split('id="overrides"')[1]
    assert NUMBER in overrides and f"dispute {dispute}: owner verified" in overrides
    assert 'id="flash"' not in page(client)  # the message shows once


def test_resolving_with_no_override_lets_the_crowd_decide(browser, client, dispute, store):
    resolve(client, dispute, csrf_token=csrf_of(page(client)), override="none", note="not ours to pin")
    assert moderation.open_disputes(store) == []
    assert [e["action"] for e in moderation.audit_log(store, NUMBER)] == ["dispute_resolved"]


@pytest.mark.parametrize("form, message", [
    ({"override": "allow", "note": ""}, "note"),
    ({"override": "maybe", "note": "x"}, "override"),
    ({"override": "allow", "note": "bad\x07note"}, "control characters"),
])
def test_a_bad_resolve_form_says_why_and_leaves_the_dispute_open(browser, client, dispute, store, form, message):
    response = resolve(client, dispute, csrf_token=csrf_of(page(client)), **form)
    shown = page(client, response.headers["Location"])
    flash = re.search(r'id="flash">([^<]*)<', shown).group(1)
    assert flash.startswith("Not resolved") and message in html.unescape(flash)
    assert [d["dispute_id"] for d in moderation.open_disputes(store)] == [dispute]


def test_resolving_an_unknown_or_closed_dispute_says_so(browser, client, dispute):
    token = csrf_of(page(client))
    resolve(client, dispute, csrf_token=token, override="none", note="done")
    again = resolve(client, dispute, csrf_token=token, override="none", note="done")
    assert "already resolved" in page(client, again.headers["Location"])
    unknown = resolve(client, "0000000000000000", csrf_token=token, override="none", note="x")
    assert "no dispute" in html.unescape(page(client, unknown.headers["Location"]))


def test_a_resolve_keeps_the_chosen_period(browser, client, dispute, store):
    day = stats.summary(store)["to"]
    response = resolve(client, dispute, csrf_token=csrf_of(page(client)), override="none", note="x",
                       **{"from": day, "to": day})
    assert response.headers["Location"] == f"/admin?from={day}&to={day}"


def test_a_resolve_without_a_session_is_refused(client, dispute, store):
    response = resolve(client, dispute, csrf_token="x", override="allow", note="x")
    assert response.status_code == 401 and is_login_form(response.get_data(as_text=True))
    assert len(moderation.open_disputes(store)) == 1


def test_what_owners_wrote_is_escaped(browser, client, store):
    moderation.open_dispute(store, NUMBER, "<script>alert(1)</script>", '"><img src=x>')
    shown = page(client)
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "<img src=x>" not in shown


# --- logging out and revoking -------------------------------------------------------------------

def test_logout_ends_the_session(browser, client, dispute, store, redis_client):
    sid, token = session_id(client), csrf_of(page(client))
    response = client.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert not redis_client.exists(SESSIONS.admin_session(sid)) and session_id(client) is None
    client.set_cookie(admin.COOKIE, sid, path="/admin")  # the old cookie, kept by someone
    assert is_login_form(page(client))
    assert resolve(client, dispute, csrf_token=token, override="allow", note="x").status_code == 401
    assert len(moderation.open_disputes(store)) == 1


def test_logout_needs_the_csrf_token(browser, client, redis_client):
    sid = session_id(client)
    assert client.post("/admin/logout").status_code == 403
    assert redis_client.exists(SESSIONS.admin_session(sid))


def test_a_revoked_keys_session_stops_working(browser, client, store, redis_client):
    sid = session_id(client)
    apikeys.revoke(store, "ops-admin")
    assert is_login_form(page(client))
    assert not redis_client.exists(SESSIONS.admin_session(sid))


def test_a_new_key_under_a_revoked_name_does_not_revive_old_sessions(browser, client, store):
    apikeys.revoke(store, "ops-admin")
    apikeys.create(store, "ops-admin", "admin")
    assert is_login_form(page(client))


# --- the figures --------------------------------------------------------------------------------

@pytest.fixture
def ftc_imported(ftc_dir, store):
    summary = importer.import_ftc(store, [os.path.join(ftc_dir, FTC_FILE)], dated_now=True)
    assert summary.imported > 10_000
    return summary


def test_the_page_shows_the_tag_shares_of_imported_ftc_data(ftc_imported, browser, client, store):
    shown = [(tag, html.unescape(label), percent) for tag, label, percent in SHARE.findall(page(client))]
    figures = stats.summary(store)
    total = figures["reports"]
    assert total == ftc_imported.imported
    assert [tag for tag, _, _ in shown] == [s["tag"] for s in figures["tag_shares"]]  # largest first
    for (tag, label, percent), share in zip(shown, figures["tag_shares"]):
        assert label == f"{share['name_en']} {share['name_zh']}"
        assert percent == f"{share['share'] * 100:.1f} %"
        assert abs(float(percent.split()[0]) - 100 * share["reports"] / total) <= 0.051  # rounded, not invented
    assert shown[0][0] == "harassment"  # most FTC complaints name no subject, or "Other"


def test_the_page_shows_reports_per_day_top_numbers_and_lists(ftc_imported, browser, client, store):
    shown = page(client)
    figures = stats.summary(store)
    today = figures["reports_per_day"][-1]
    assert f"<title>{today['date']}: {today['reports']} reports</title>" in shown
    assert shown.count('<rect class="bar"') == 30
    top = figures["top_numbers"][0]
    assert f"<td>{top['number']}</td><td class=\"n\">{top['reporters']}</td>" in shown
    lists = shown.split('id="lists"')[1].split("</table>")[0]
    assert all(f"<td>{entry['name']}</td>" in lists for entry in figures["lists"])


def test_the_period_picker_shows_the_chosen_days(browser, client, store):
    day = stats.summary(store)["to"]
    shown = page(client, f"/admin?from={day}&to={day}")
    assert shown.count('<rect class="bar"') == 1 and f'name="from" value="{day}"' in shown


@pytest.mark.parametrize("query, message", [
    ("from=2024-13-45", "from and to are dates"),
    ("from=yesterday&to=2024-01-01", "from and to are dates"),
    ("from=2024-02-01&to=2024-01-01", "from must not be after to"),
    ("from=2020-01-01&to=2024-01-01", "a period is at most"),
])
def test_a_bad_period_shows_an_error_not_a_500(browser, client, query, message):
    response = client.get(f"/admin?{query}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    shown = response.get_data(as_text=True)
    assert message in shown and "Share of each tag" in shown  # the default period, with the error above it
