"""GET /v1/stats: the figures operators and regulators ask for."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from blocklist import apikeys, moderation, publish
from tests.support import assert_error

DAY = 86400


@pytest.fixture
def admin(store):
    return {"Authorization": f"Bearer {apikeys.create(store, 'ops-stats', 'admin')}"}


def today(clock) -> str:
    return datetime.fromtimestamp(clock(), tz=timezone.utc).date().isoformat()


def report(client, headers, number, tag):
    response = client.post("/v1/reports", json={"number": number, "tag": tag}, headers=headers)
    assert response.status_code == 201
    return response.get_json()


def test_reports_per_day_and_tag_shares_count_votes_not_duplicates(client, new_device, admin, clock):
    devices = [new_device() for _ in range(4)]
    for d in devices[:3]:
        report(client, d, "+8613800138000", "loan")
    report(client, devices[3], "+8613800138001", "real_estate")
    report(client, devices[0], "+8613800138000", "loan")  # a duplicate: not a report in the statistics
    first_day = today(clock)
    clock.advance(days=1)
    report(client, devices[3], "+8613800138000", "debt_collection")
    body = client.get(f"/v1/stats?from={first_day}&to={today(clock)}", headers=admin).get_json()
    assert body["reports_per_day"] == [{"date": first_day, "reports": 4}, {"date": today(clock), "reports": 1}]
    assert body["reports"] == 5
    assert [(s["tag"], s["reports"], s["share"]) for s in body["tag_shares"]] == [
        ("loan", 3, 0.6), ("debt_collection", 1, 0.2), ("real_estate", 1, 0.2)]  # ties: the more severe first
    assert body["tag_shares"][0]["name_zh"] == "贷款理财"


def test_the_default_period_is_the_last_thirty_days(client, admin, clock):
    body = client.get("/v1/stats", headers=admin).get_json()
    assert body["to"] == today(clock) and len(body["reports_per_day"]) == 30
    assert body["reports"] == 0 and body["tag_shares"] == []


def test_most_reported_numbers_lists_publishes_disputes_and_overrides(client, store, signer, new_device, admin):
    number = "+8613800138000"
    for _ in range(6):
        report(client, new_device(), number, "fraud")
    publish.publish(store, signer)
    moderation.set_override(store, "+8613900139000", "allow", "bank hotline", "ops")
    opened = client.post("/v1/disputes", headers=new_device(),
                         json={"number": number, "reason": "my shop", "contact": "owner@example.com"})
    assert opened.status_code == 201
    body = client.get("/v1/stats", headers=admin).get_json()
    assert body["top_numbers"][0] == {"number": number, "reporters": 6, "verdict": "block", "label": "fraud"}
    spam = next(entry for entry in body["lists"] if entry["name"] == "spam")
    assert spam["version"] == 1 and spam["count"] == 1 and spam["published_at"]
    assert {p["list"] for p in body["recent_publishes"]} >= {"spam", "fraud"}
    assert [d["number"] for d in body["open_disputes"]] == [number]
    assert [(o["action"], o["number"], o["reason"]) for o in body["overrides"]] == [
        ("override", "+8613900139000", "bank hotline")]


def test_withdrawn_votes_leave_the_most_reported_ranking(client, new_device, admin):
    devices = [new_device() for _ in range(5)]
    for d in devices:
        report(client, d, "+8613800138000", "loan")
    assert client.get("/v1/stats", headers=admin).get_json()["top_numbers"][0]["reporters"] == 5
    client.delete("/v1/reports/+8613800138000", headers=devices[0])
    assert client.get("/v1/stats", headers=admin).get_json()["top_numbers"] == []


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=yesterday", "from=2026-05-02&to=2026-05-01",
                                   "from=2024-01-01&to=2026-01-01", "to=2026-05-01&x=1"])
def test_a_bad_period_is_400(client, admin, query):
    assert_error(client.get(f"/v1/stats?{query}", headers=admin), 400, "validation_error")


def test_statistics_need_an_admin_key(client, store, device):
    assert_error(client.get("/v1/stats", headers=device), 401, "unauthorized")
    feed_key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    assert_error(client.get("/v1/stats", headers=feed_key), 403, "forbidden")
