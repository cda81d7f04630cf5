"""The public monthly report: made from counters (checked against a direct count), a device
counted once per number per day, counts under 10 withheld, a past month frozen with its ETag,
cases per agency, and nothing of a complaint's content or its reporter."""
from __future__ import annotations

import pytest

from blocklist import apikeys, complaints, monthly
from tests.support import assert_error

MONTH = "2026-10"  # the injected clock starts on 2026-10-28


def complain(client, device, number: str, tag: str = "loan", **extra) -> dict:
    response = client.post("/v1/complaints", json={"number": number, "tag": tag, **extra}, headers=device)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def report(client, month: str = MONTH, **query):
    return client.get(f"/v1/public/reports/{month}", query_string=query)


def test_the_report_matches_a_direct_count_of_what_was_filed(client, new_device):
    filed = [("loan", 12), ("real_estate", 10), ("fraud", 15), ("education", 3)]
    for tag, count in filed:
        for n in range(count):
            complain(client, new_device(), f"+86138{hash(tag) % 1000:03d}{n:05d}", tag, content="secret words")
    body = report(client).get_json()
    total = sum(count for _, count in filed)
    assert body["complaints"] == total
    shares = {row["tag"]: (row["complaints"], row["share"]) for row in body["category_shares"]}
    assert shares == {"fraud": (15, round(15 / total, 4)), "loan": (12, round(12 / total, 4)),
                      "real_estate": (10, round(10 / total, 4)), "education": (None, None)}
    assert [row["tag"] for row in body["category_shares"]] == ["fraud", "loan", "real_estate", "education"]
    day = {row["date"]: row["complaints"] for row in body["complaints_per_day"]}
    assert day["2026-10-28"] == total and day["2026-10-27"] is None and len(day) == 31
    cases = {row["agency"]: row["received"] for row in body["cases"]}
    assert cases["finance"] == 12 and cases["police"] == 15 and cases["housing"] == 10 and cases["education"] is None
    text = report(client).get_data(as_text=True)
    assert "secret words" not in text


def test_a_device_counts_once_per_number_per_day(client, new_device, clock):
    devices = [new_device() for _ in range(10)]
    for device in devices:
        for _ in range(3):
            complain(client, device, "+8613800138000")  # the same number three times: once
    assert report(client).get_json()["complaints"] == 10
    clock.advance(days=1)
    for device in devices:
        complain(client, device, "+8613800138000")  # another day: once more
    body = report(client).get_json()
    assert body["complaints"] == 20
    assert {row["date"]: row["complaints"] for row in body["complaints_per_day"]}["2026-10-29"] == 10


def test_counts_under_ten_are_withheld(client, new_device):
    for n in range(9):
        complain(client, new_device(), f"+861380013{n:04d}")
    body = report(client).get_json()
    assert body["complaints"] is None and body["category_shares"][0]["complaints"] is None
    assert "<10" in report(client, format="csv").get_data(as_text=True)
    complain(client, new_device(), "+8613800139999")
    assert report(client).get_json()["complaints"] == 10


def test_a_past_month_is_frozen_with_its_etag(client, new_device, clock, store):
    for n in range(12):
        complain(client, new_device(), f"+861380013{n:04d}")
    live = report(client)
    assert live.headers["Cache-Control"] == "public, max-age=300"
    clock.advance(days=5)  # November
    frozen = report(client)
    assert frozen.headers["Cache-Control"].endswith("immutable")
    assert frozen.get_json()["complaints"] == 12
    assert report(client).headers["ETag"] == frozen.headers["ETag"]
    again = client.get(f"/v1/public/reports/{MONTH}", headers={"If-None-Match": frozen.headers["ETag"]})
    assert again.status_code == 304
    store.redis.delete(store.keys.complaint_month(MONTH))  # even the counters gone: the report stays
    clock.advance(days=store.config.complaint_retention_days + 1)
    complaints.sweep(store)
    assert report(client).get_json() == frozen.get_json()


def test_the_scheduler_freezes_last_month(client, new_device, clock, store):
    complain(client, new_device(), "+8613800138000")
    clock.advance(days=5)
    monthly.freeze_last_month(store)
    assert store.redis.exists(store.keys.complaint_report(MONTH))


def test_numbers_newly_marked_and_ring_once_detected_are_counted(client, new_device):
    for n in range(12):
        for _ in range(3):  # three reporters block a number: it is marked once
            complain(client, new_device(), f"+861380013{n:04d}", "fraud")
    assert report(client).get_json()["numbers_newly_marked"] == 12


@pytest.mark.parametrize("month, status", [("2026-13", 400), ("26-10", 400), ("2026-12", 404), ("x", 400)])
def test_a_bad_or_future_month_is_refused(client, month, status):
    assert_error(report(client, month), status, "validation_error", "not_found")


def test_upheld_cases_count_for_their_agency_and_the_month_shows_their_exposure(client, new_device, store):
    key = {"Authorization": f"Bearer {apikeys.create(store, 'pboc', 'regulator', 'finance')}"}
    for n in range(10):
        case_id = complain(client, new_device(), f"+861380013{n:04d}")["case_id"]
        client.post(f"/v1/regulator/cases/{case_id}/transition", json={"to": "verifying"}, headers=key)
        assert client.post(f"/v1/regulator/cases/{case_id}/transition", json={"to": "upheld", "company": f"Co {n}"},
                           headers=key).status_code == 200
    body = report(client).get_json()
    assert {row["agency"]: row["upheld"] for row in body["cases"]}["finance"] == 10
    assert sorted(entry["company"] for entry in body["exposure"]) == sorted(f"Co {n}" for n in range(10))
