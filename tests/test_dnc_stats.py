"""Do-Not-Call statistics (blocklist/dnc_stats.py): registrations new, renewed, moved, updated,
removed and expired, by region; refusals and accept windows; scrubs over JSON and CSV;
violations; small-count suppression for the public report; GET /v1/dnc/stats and the /admin
charts."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from blocklist import apikeys, devices, dnc, dnc_stats
from blocklist.errors import ValidationFailed
from tests.conftest import START
from tests.support import assert_error, redis_state
from tests.test_admin import login, page
from tests.test_dnc import ALL, LOS_ANGELES, SHANGHAI, SHANGHAI_2, TOKYO, new_device, register
from tests.test_dnc_api import registered, scrub, scrub_csv

DAY = 86400
TODAY = datetime.fromtimestamp(START, tz=timezone.utc).date().isoformat()
LOAN_WINDOW = {"refuse": ["loan", "real_estate"],
               "accept_windows": [{"days": ["sat"], "from": "10:00", "to": "12:00", "categories": ["loan"]}]}


def figures(store, **period) -> dict:
    return dnc_stats.summary(store, period.get("from"), period.get("to"))


def refusing(result: dict) -> dict[str, int]:
    return {row["category"]: row["registrations"] for row in result["refusals"] if row["registrations"]}


def regions(result: dict) -> dict[str, int]:
    return {row["region"]: row["registrations"] for row in result["by_region"]}


def today_of(result: dict) -> dict:
    return result["per_day"][-1]


@pytest.fixture
def owner(store) -> devices.Device:
    """A device of the domain functions (the `device` fixture is HTTP headers)."""
    return new_device(store)


@pytest.fixture
def admin(store) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, 'ops', 'admin')}"}


# --- registrations -------------------------------------------------------------------------------

def test_registrations_are_counted_new_per_day_by_region_refusal_and_window(store, owner):
    register(store, owner, SHANGHAI, LOAN_WINDOW)
    register(store, owner, SHANGHAI_2, ALL)
    register(store, owner, LOS_ANGELES, {"refuse": ["insurance"]})
    result = figures(store)
    assert result["registrations"] == 3 and result["new"] == 3
    assert today_of(result)["date"] == TODAY and today_of(result)["new"] == 3
    assert regions(result) == {"CN": 2, "US": 1}
    assert [row["new"] for row in result["by_region"]] == [2, 1]
    assert refusing(result) == {code: 1 for code in dnc.MARKETING} | {"loan": 2, "real_estate": 2, "insurance": 2}
    assert next(r for r in result["refusals"] if r["category"] == "loan")["share"] == round(2 / 3, 4)
    assert result["accept_windows"] == {"registrations": 1, "share": round(1 / 3, 4)}


def test_verifying_again_or_moving_is_not_new_and_a_change_moves_the_refusals(store, owner):
    register(store, owner, SHANGHAI, ALL)
    register(store, owner, SHANGHAI, LOAN_WINDOW)  # verified again by the same owner
    register(store, new_device(store), SHANGHAI, {"refuse": ["education"]})  # the phone was replaced
    result = figures(store)
    assert result["registrations"] == 1 and regions(result) == {"CN": 1}
    assert {k: today_of(result)[k] for k in ("new", "renewed", "moved")} == {"new": 1, "renewed": 1, "moved": 1}
    assert refusing(result) == {"education": 1} and result["accept_windows"]["registrations"] == 0


def test_updating_preferences_changes_the_shares_not_the_total(store, owner):
    register(store, owner, SHANGHAI, {"refuse": ["loan"]})
    dnc.update(store, owner.id, SHANGHAI, LOAN_WINDOW)
    result = figures(store)
    assert result["registrations"] == 1 and today_of(result)["updated"] == 1
    assert refusing(result) == {"loan": 1, "real_estate": 1}
    assert result["accept_windows"] == {"registrations": 1, "share": 1.0}


def test_removal_and_erasure_count_as_removed(store, owner):
    register(store, owner, SHANGHAI, LOAN_WINDOW)
    register(store, owner, TOKYO, ALL)
    other = new_device(store)
    register(store, other, LOS_ANGELES, ALL)
    dnc.remove(store, owner.id, SHANGHAI)
    devices.erase(store, other.id)
    result = figures(store)
    assert result["registrations"] == 1 and result["removed"] == 2 and today_of(result)["removed"] == 2
    assert regions(result) == {"JP": 1, "CN": 0, "US": 0}
    assert {row["region"]: row["removed"] for row in result["by_region"]} == {"JP": 0, "CN": 1, "US": 1}
    assert refusing(result) == {code: 1 for code in dnc.MARKETING}
    assert result["accept_windows"]["registrations"] == 0


def test_an_expiry_counts_once_its_day_is_over(store, clock, owner):
    register(store, owner, SHANGHAI, LOAN_WINDOW)
    expiry = date.fromisoformat(TODAY).toordinal() + store.config.dnc_reverify_days
    day = date.fromordinal(expiry).isoformat()
    clock.advance(days=store.config.dnc_reverify_days)
    assert figures(store, **{"from": day, "to": day})["registrations"] == 1  # expires during the day
    clock.advance(days=1)
    result = figures(store, **{"from": day, "to": day})
    assert result["registrations"] == 0 and result["expired"] == 1
    assert regions(result) == {"CN": 0} and result["by_region"][0]["expired"] == 1
    assert refusing(result) == {} and result["accept_windows"]["registrations"] == 0
    assert figures(store)["registrations"] == 0  # settled once: reading again subtracts nothing more
    dnc.erase_device(store, owner.id)  # an expired registration erased is not removed again
    result = figures(store)
    assert result["registrations"] == 0 and result["removed"] == 0


def test_verifying_again_moves_the_expiry(store, clock, owner):
    register(store, owner, SHANGHAI, ALL)
    clock.advance(days=700)
    register(store, owner, SHANGHAI, ALL)
    clock.advance(days=60)  # past the first expiry
    result = figures(store, **{"from": "2028-09-01", "to": "2028-12-31"})
    assert result["registrations"] == 1 and result["expired"] == 0
    clock.advance(days=680)  # 10 days past the second expiry
    result = figures(store)
    assert result["registrations"] == 0 and result["expired"] == 1


def test_an_expired_number_registered_again_is_new(store, clock, owner):
    register(store, owner, SHANGHAI, ALL)
    clock.advance(days=store.config.dnc_reverify_days + 1)
    register(store, owner, SHANGHAI, ALL)
    result = figures(store)
    assert result["registrations"] == 1 and today_of(result)["new"] == 1 and result["expired"] == 1


# --- scrubs and violations -----------------------------------------------------------------------

def test_scrubs_over_json_and_csv_are_counted(client, config, store, device, admin):
    registered(client, config, device, SHANGHAI, {"refuse": ["loan"]})
    acme = {"Authorization": f"Bearer {apikeys.create(store, 'acme', 'scrub')}"}
    assert scrub(client, acme, [SHANGHAI, TOKYO, "not a number"]).status_code == 200
    answer = scrub_csv(client, acme, f"{SHANGHAI}\n{LOS_ANGELES}\n")
    assert answer.status_code == 200 and answer.get_data(as_text=True).count("\n") == 3
    result = client.get("/v1/dnc/stats", headers=admin).get_json()
    assert (result["scrubs"], result["numbers_scrubbed"], result["callable"]) == (2, 5, 2)
    assert result["callable_share"] == 0.4
    assert {k: result["per_day"][-1][k] for k in ("scrubs", "numbers_scrubbed", "callable")} == {
        "scrubs": 2, "numbers_scrubbed": 5, "callable": 2}
    assert result["registrations"] == 1 and result["new"] == 1


def test_violations_are_counted_per_category_and_day(store):
    day = int(START // DAY)
    dnc_stats.note_violation(store, None, "loan", day)
    dnc_stats.note_violation(store, None, "loan", date.fromisoformat(TODAY))
    store.pipelined(lambda pipe: dnc_stats.note_violation(store, pipe, "insurance", day - 1))
    result = figures(store)
    counted = {row["category"]: row["violations"] for row in result["violations"] if row["violations"]}
    assert counted == {"loan": 2, "insurance": 1}
    assert [d["violations"] for d in result["per_day"][-2:]] == [1, 2]
    assert {row["category"] for row in result["violations"]} >= set(dnc.MARKETING)


# --- the public report ---------------------------------------------------------------------------

def shanghai(i: int) -> str:
    return f"+861380013{i:04d}"


def test_the_public_summary_withholds_counts_under_ten(store, owner):
    for i in range(12):
        register(store, owner, shanghai(i), LOAN_WINDOW if i < 3 else {"refuse": ["loan"]})
    register(store, owner, LOS_ANGELES, {"refuse": ["loan"]})
    for _ in range(9):
        dnc_stats.note_violation(store, None, "insurance", int(START // DAY))
    for _ in range(10):
        dnc_stats.note_violation(store, None, "loan", int(START // DAY))
    public = dnc_stats.public_summary(store, TODAY[:7])
    assert public["month"] == TODAY[:7] and public["suppressed_below"] == 10
    assert public["registrations"] == 13 and public["new"] == 13 and public["removed"] is None
    rows = {row["category"]: row for row in public["refusals"]}
    assert (rows["loan"]["registrations"], rows["loan"]["share"]) == (13, 1.0)
    assert (rows["real_estate"]["registrations"], rows["real_estate"]["share"]) == (None, None)
    assert public["accept_windows"] == {"registrations": None, "share": None}
    assert public["by_region"] == [{"region": "CN", "registrations": 12, "share": round(12 / 13, 4)},
                                   {"region": "other", "registrations": None, "share": None}]
    violations = {row["category"]: row for row in public["violations"]}
    assert violations["loan"] == {"category": "loan", "violations": 10, "share": 1.0}  # of published counts
    assert violations["insurance"] == {"category": "insurance", "violations": None, "share": None}
    assert public["scrubs"] is None and public["callable_share"] is None
    assert dnc_stats.shown(public["removed"]) == "<10" and dnc_stats.shown(public["registrations"]) == "13"
    assert dnc_stats.public_summary(store, date.fromisoformat(TODAY))["registrations"] == 13


def test_the_public_summary_of_a_quiet_month_publishes_no_count(store, owner):
    for i in range(9):
        register(store, owner, shanghai(i), ALL)
    public = dnc_stats.public_summary(store, "2026-09")
    assert public["registrations"] is None and public["new"] is None
    assert all(row["registrations"] is None and row["share"] is None for row in public["refusals"])
    assert public["by_region"] == [{"region": "other", "registrations": None, "share": None}]


@pytest.mark.parametrize("month", ["2026-13", "2026", "october", "2026-10-01"])
def test_a_bad_month_is_refused(store, month):
    with pytest.raises(ValidationFailed):
        dnc_stats.public_summary(store, month)


# --- over HTTP -----------------------------------------------------------------------------------

def test_the_stats_need_an_admin_key(client, store, device):
    assert_error(client.get("/v1/dnc/stats"), 401, "unauthorized")
    scrub_key = {"Authorization": f"Bearer {apikeys.create(store, 'acme', 'scrub')}"}
    assert_error(client.get("/v1/dnc/stats", headers=scrub_key), 403, "forbidden")
    assert_error(client.get("/v1/dnc/stats", headers=device), 401, "unauthorized")


def test_the_stats_answer_a_chosen_period(client, config, device, admin):
    registered(client, config, device, SHANGHAI, ALL)
    result = client.get(f"/v1/dnc/stats?from={TODAY}&to={TODAY}", headers=admin).get_json()
    assert result["from"] == result["to"] == TODAY and len(result["per_day"]) == 1
    assert result["registrations"] == 1 and result["per_day"][0]["new"] == 1
    assert len(client.get("/v1/dnc/stats", headers=admin).get_json()["per_day"]) == 30


@pytest.mark.parametrize("query", ["from=2026-13-01", "to=yesterday", "from=2026-10-28&to=2026-10-01",
                                   "from=2020-01-01&to=2026-10-28", "until=2026-10-28"])
def test_bad_dates_are_400_and_write_nothing(client, store, redis_client, device, admin, query):
    register(store, new_device(store), SHANGHAI, ALL)
    client.get("/v1/dnc/stats", headers=admin)  # the first read settles; later ones write nothing
    before = redis_state(redis_client)
    assert_error(client.get(f"/v1/dnc/stats?{query}", headers=admin), 400, "validation_error", "validation_failed")
    assert redis_state(redis_client) == before


def test_the_dashboard_charts_the_dnc_figures(client, config, store, device):
    registered(client, config, device, SHANGHAI, LOAN_WINDOW)
    acme = {"Authorization": f"Bearer {apikeys.create(store, 'acme', 'scrub')}"}
    scrub(client, acme, [SHANGHAI, TOKYO])
    dnc_stats.note_violation(store, None, "loan", int(START // DAY))
    assert login(client, apikeys.create(store, "ops-admin", "admin")).status_code == 303
    shown = page(client)
    assert 'id="dnc-new"' in shown and 'id="dnc-scrubbed"' in shown
    assert shown.count('<rect class="bar dnc-bar"') == 60  # 30 days, two charts
    assert f"<title>{TODAY}: 1 new, 0 removed, 0 expired</title>" in shown
    assert f"<title>{TODAY}: 1 scrubs of 2 numbers, 1 callable</title>" in shown
    assert '<g class="dnc-refusal" data-category="loan">' in shown and "100.0 %" in shown
    assert '<g class="dnc-refusal" data-category="accept_windows">' in shown
    assert '<g class="dnc-violation" data-category="loan">' in shown
    regions_table = shown.split('id="dnc-regions"')[1].split("</table>")[0]
    assert '<td>CN</td><td class="n">1</td><td class="n">1</td>' in regions_table
    assert "1 live registrations" in shown and "50.0 % callable" in shown
