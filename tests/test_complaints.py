"""Complaints and their cases over HTTP: intake (the device's vote too), routing, the device's own
list, every case step and the illegal ones, what an agency's key may see, exposure only after
upheld, the three exports and the FTC round trip, erasure and retention."""
from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from blocklist import apikeys, complaint_export, complaints, importer
from sync.signing import iso
from tests.support import assert_error, redis_state

LOAN = "+8613800138000"
FRAUD = "+8613900139000"
US = "+12025550143"
CALL_AT = "2026-10-27T10:30:00+08:00"


def bearer(store, name: str, scope: str, agency: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, name, scope, agency)}"}


@pytest.fixture
def finance(store) -> dict[str, str]:
    return bearer(store, "pboc", "regulator", "finance")


@pytest.fixture
def police(store) -> dict[str, str]:
    return bearer(store, "mps", "regulator", "police")


@pytest.fixture
def admin(store) -> dict[str, str]:
    return bearer(store, "operator", "admin")


def complain(client, device, number: str = LOAN, tag: str = "loan", **extra):
    return client.post("/v1/complaints", json={"number": number, "tag": tag, **extra}, headers=device)


def filed(client, device, number: str = LOAN, tag: str = "loan", **extra) -> dict:
    response = complain(client, device, number, tag, **extra)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def step(client, headers, case_id: str, to: str, **extra):
    return client.post(f"/v1/regulator/cases/{case_id}/transition", json={"to": to, **extra}, headers=headers)


def test_a_complaint_is_routed_to_its_agency_and_is_also_the_devices_vote(client, device):
    answer = filed(client, device, company="Quick Loans Ltd", content="offered a loan at 3 %", call_at=CALL_AT,
                   call_type="live", duration_seconds=42, reporter_region="010")
    assert answer["number"] == LOAN and answer["agency"] == "finance" and answer["case_status"] == "received"
    assert answer["dnc_violation"] is False and answer["duplicate"] is False
    assert client.get(f"/v1/numbers/{LOAN}", headers=device).get_json()["reporters"] == 1
    assert filed(client, device, FRAUD, "fraud")["agency"] == "police"
    assert filed(client, device, "+8613700137000", "delivery")["agency"] == "telecom"  # the default


def test_a_complaint_with_its_report_id_sent_twice_is_filed_once(client, device, admin):
    first = filed(client, device, report_id="r-1")
    again = filed(client, device, report_id="r-1")
    assert again["complaint_id"] == first["complaint_id"] and again["duplicate"] is True
    case = client.get(f"/v1/regulator/cases/{first['case_id']}", headers=admin).get_json()
    assert case["complaints"] == 1


@pytest.mark.parametrize("body, field", [
    ({"number": LOAN, "tag": "loan", "contact": "138 0000 0000"}, "contact"),
    ({"number": LOAN, "tag": "loan", "contact": "x", "contact_consent": False}, "contact"),
    ({"number": LOAN, "tag": "loan", "call_type": "fax"}, "call_type"),
    ({"number": LOAN, "tag": "loan", "content": "x" * 2001}, "content"),
    ({"number": LOAN, "tag": "nonsense"}, "tag"),
    ({"number": LOAN, "tag": "loan", "reporter_region": "a\nb"}, "reporter_region"),
])
def test_a_bad_complaint_is_400_and_changes_nothing(client, device, redis_client, body, field):
    before = redis_state(redis_client)
    error = assert_error(client.post("/v1/complaints", json=body, headers=device), 400, "validation_error")
    assert field in error["details"]["fields"]
    assert redis_state(redis_client) == before


def test_a_call_more_than_five_minutes_ahead_is_400_and_changes_nothing(client, device, redis_client, clock):
    before = redis_state(redis_client)
    ahead = iso(clock() + 301).replace("Z", "+00:00")
    assert_error(complain(client, device, call_at=ahead), 400, "validation_error")
    assert redis_state(redis_client) == before
    assert complain(client, device, call_at=iso(clock() + 240).replace("Z", "+00:00")).status_code == 201


def test_a_case_collects_the_complaints_of_one_number_at_one_agency(client, new_device, admin):
    for company in ("Quick Loans", "Quick Loans", "QL Finance"):
        answer = filed(client, new_device(), company=company)
    filed(client, new_device(), tag="securities")
    case = client.get(f"/v1/regulator/cases/{answer['case_id']}", headers=admin).get_json()
    assert case["complaints"] == 4 and case["status"] == "received"
    assert case["companies"] == [{"company": "Quick Loans", "complaints": 2}, {"company": "QL Finance", "complaints": 1}]
    assert case["categories"] == [{"tag": "loan", "complaints": 3}, {"tag": "securities", "complaints": 1}]
    assert case["crowd"]["reporters"] == 4 and len(case["complaints_shown"]) == 4
    assert [entry["to"] for entry in case["audit"]] == ["received"]


def test_the_device_lists_its_own_complaints_with_their_case_status(client, device, new_device, clock):
    filed(client, device, content="first")
    clock.advance(seconds=1)
    filed(client, device, FRAUD, "fraud")
    filed(client, new_device())  # another device's
    mine = client.get("/v1/complaints/me", headers=device).get_json()["complaints"]
    assert [(c["number"], c["case_status"]) for c in mine] == [(FRAUD, "received"), (LOAN, "received")]
    assert "contact" not in mine[0]


def test_a_case_moves_along_its_steps_each_with_an_audit_entry(client, device, finance):
    case_id = filed(client, device)["case_id"]
    assert step(client, finance, case_id, "verifying", note="calling the bank").get_json()["status"] == "verifying"
    assert_error(step(client, finance, case_id, "upheld"), 400, "validation_error")  # needs the verified company
    upheld = step(client, finance, case_id, "upheld", note="licence checked", company="Quick Loans Co., Ltd.")
    assert upheld.status_code == 200
    body = upheld.get_json()
    assert body["status"] == "upheld" and body["verified_company"] == "Quick Loans Co., Ltd."
    assert [(e["from"], e["to"], e["actor"], e["note"]) for e in body["audit"]] == [
        ("verifying", "upheld", "pboc", "licence checked"), ("received", "verifying", "pboc", "calling the bank"),
        ("", "received", "", "opened by a complaint")]


@pytest.mark.parametrize("path, illegal", [
    ([], "upheld"),  # received cannot be upheld before it is verified
    (["rejected"], "verifying"),
    (["verifying", "upheld"], "rejected"),
    (["verifying", "upheld"], "verifying"),
    (["verifying", "rejected"], "upheld"),
])
def test_an_illegal_step_is_409_and_changes_nothing(client, device, finance, redis_client, path, illegal):
    case_id = filed(client, device)["case_id"]
    for to in path:
        assert step(client, finance, case_id, to, company="X").status_code == 200
    client.get("/v1/regulator/cases", headers=finance)  # the key's first use is noted: the step writes nothing
    before = redis_state(redis_client)
    assert_error(step(client, finance, case_id, illegal, company="X"), 409, "conflict")
    assert redis_state(redis_client) == before


def test_a_rejected_case_reopens_with_a_new_complaint_and_an_upheld_one_stays(client, new_device, finance):
    case_id = filed(client, new_device())["case_id"]
    step(client, finance, case_id, "rejected", note="no evidence")
    assert filed(client, new_device())["case_status"] == "received"
    case = client.get(f"/v1/regulator/cases/{case_id}", headers=finance).get_json()
    assert case["audit"][0]["note"] == "reopened by a new complaint" and case["complaints"] == 2
    step(client, finance, case_id, "verifying")
    step(client, finance, case_id, "upheld", company="Quick Loans")
    assert filed(client, new_device())["case_status"] == "upheld"
    assert client.get(f"/v1/regulator/cases/{case_id}", headers=finance).get_json()["complaints"] == 3


def test_an_agency_key_sees_only_its_agencys_cases(client, device, finance, police, admin):
    loan_case = filed(client, device)["case_id"]
    fraud_case = filed(client, device, FRAUD, "fraud")["case_id"]
    assert [c["case_id"] for c in client.get("/v1/regulator/cases", headers=finance).get_json()["cases"]] == [loan_case]
    assert_error(client.get(f"/v1/regulator/cases/{fraud_case}", headers=finance), 404, "not_found")
    assert_error(step(client, finance, fraud_case, "verifying"), 404, "not_found")
    assert {c["case_id"] for c in client.get("/v1/regulator/cases", headers=admin).get_json()["cases"]} == {
        loan_case, fraud_case}
    scrub = bearer(client.application.extensions["callmark"], "acme", "scrub")
    assert_error(client.get("/v1/regulator/cases", headers=scrub), 403, "forbidden")


def test_a_transfer_moves_the_case_to_the_agency_it_names(client, device, finance, police, redis_client):
    case_id = filed(client, device)["case_id"]
    assert_error(step(client, finance, case_id, "transferred"), 400, "validation_error")  # names no agency
    assert_error(step(client, finance, case_id, "transferred", agency="nowhere"), 400, "validation_error")
    moved = step(client, finance, case_id, "transferred", agency="police", note="a scam, not a loan")
    assert moved.status_code == 200 and moved.get_json()["agency"] == "police"
    assert moved.get_json()["status"] == "received"
    assert client.get("/v1/regulator/cases", headers=finance).get_json()["cases"] == []
    assert [c["case_id"] for c in client.get("/v1/regulator/cases", headers=police).get_json()["cases"]] == [case_id]
    assert len(client.get(f"/v1/regulator/cases/{case_id}", headers=police).get_json()["complaints_shown"]) == 1


def test_listing_pages_with_a_stable_cursor_newest_activity_first(client, new_device, admin, clock):
    made = []
    for n in range(7):
        made.append(filed(client, new_device(), f"+861380013{n:04d}")["case_id"])
        clock.advance(seconds=1)
    seen, cursor = [], None
    while True:
        page = client.get("/v1/regulator/cases", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=admin).get_json()
        seen += [c["case_id"] for c in page["cases"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert_error(client.get("/v1/regulator/cases?cursor=bm9wZQ", headers=admin), 400, "validation_error")


def test_exposure_shows_only_upheld_cases_by_the_verified_name(client, new_device, finance):
    case_id = filed(client, new_device(), company="what a reporter typed")["case_id"]
    filed(client, new_device(), FRAUD, "fraud", company="Crowd Claim Inc")
    assert client.get("/v1/public/exposure").get_json() == {"exposure": []}
    step(client, finance, case_id, "verifying")
    assert client.get("/v1/public/exposure").get_json() == {"exposure": []}
    step(client, finance, case_id, "upheld", company="Quick Loans Co., Ltd.")
    exposure = client.get("/v1/public/exposure")
    assert exposure.headers["Cache-Control"].startswith("public")
    entry, = exposure.get_json()["exposure"]
    assert entry["company"] == "Quick Loans Co., Ltd." and entry["numbers"] == [LOAN]
    assert entry["categories"] == ["loan"] and entry["upheld_cases"] == 1
    assert "what a reporter typed" not in exposure.get_data(as_text=True)


def export(client, headers, fmt: str, **query):
    return client.get("/v1/regulator/complaints/export", query_string={"format": fmt, **query}, headers=headers)


def test_the_csv_and_ndjson_exports_carry_the_12321_fields(client, new_device, finance, admin):
    filed(client, new_device(), company="Quick Loans", content="said, with a comma", call_at=CALL_AT,
          call_type="robocall", reporter_region="010", duration_seconds=12)
    filed(client, new_device(), FRAUD, "fraud")
    rows = list(csv.DictReader(io.StringIO(export(client, finance, "csv").get_data(as_text=True))))
    assert len(rows) == 1 and tuple(rows[0]) == complaint_export.COLUMNS
    row = rows[0]
    assert (row["number"], row["company"], row["content"], row["tag"], row["tag_zh"]) == (
        LOAN, "Quick Loans", "said, with a comma", "loan", "贷款理财")
    assert (row["call_at"], row["call_type"], row["reporter_region"], row["agency"], row["case_status"]) == (
        "2026-10-27T02:30:00Z", "robocall", "010", "finance", "received")
    lines = export(client, admin, "ndjson").get_data(as_text=True).splitlines()
    assert sorted(json.loads(line)["number"] for line in lines) == [LOAN, FRAUD]
    zipped = client.get("/v1/regulator/complaints/export?format=ndjson", headers={**admin, "Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.get_data()).decode().splitlines() == lines


def test_the_ftc_export_is_the_ftc_schema_and_imports_back_with_the_same_counts(client, new_device, admin, store,
                                                                              tmp_path):
    for number, tag in ((US, "loan"), (US, "loan"), ("+13125550199", "health"), (LOAN, "fraud")):
        filed(client, new_device(), number, tag, call_type="recorded", reporter_region="202")
    text = export(client, admin, "ftc").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == complaint_export.FTC_COLUMNS and len(rows) == 5
    assert sorted(row[0] for row in rows[1:]) == ["+8613800138000", "2025550143", "2025550143", "3125550199"]
    assert {row[5] for row in rows[1:]} == {"202"} and {row[7] for row in rows[1:]} == {"Y"}
    path = tmp_path / "export.csv"
    path.write_text(text)
    source, = importer.read_files(store, [str(path)])
    assert source.format == importer.REPORTED_CALLS and source.rows == 4
    summary = importer.import_sources(store, [source])
    assert summary.imported == 4 and sum(summary.skipped.values()) == 0
    assert sorted(importer.subject_tag(row[6]) for row in rows[1:]) == ["fraud", "health", "loan", "loan"]


def test_erasure_detaches_the_devices_complaints_and_their_contacts(client, new_device, admin, redis_client):
    device = new_device()
    answer = filed(client, device, contact_consent=True, contact="wechat: reporter-9", content="evidence")
    case = client.get(f"/v1/regulator/cases/{answer['case_id']}", headers=admin).get_json()
    assert case["complaints_shown"][0]["contact"] == "wechat: reporter-9"
    assert "reporter-9" not in str(redis_state(redis_client))  # sealed
    assert client.delete("/v1/devices/me", headers=device).status_code == 200
    case = client.get(f"/v1/regulator/cases/{answer['case_id']}", headers=admin).get_json()
    assert case["complaints_shown"][0]["contact"] is None and case["complaints_shown"][0]["content"] == "evidence"
    assert not list(redis_client.scan_iter("cm:dcp:*"))


def test_complaints_past_the_retention_are_deleted_and_their_case_stays(client, device, admin, store, clock):
    answer = filed(client, device)
    clock.advance(days=store.config.complaint_retention_days - 1)
    assert complaints.sweep(store) == 0
    clock.advance(days=2)
    assert complaints.sweep(store) == 1
    case = client.get(f"/v1/regulator/cases/{answer['case_id']}", headers=admin).get_json()
    assert case["complaints"] == 1 and case["complaints_shown"] == []
    assert client.get("/v1/complaints/me", headers=device).get_json()["complaints"] == []


def test_no_key_or_value_holds_the_reporters_number_or_contact(client, device, redis_client):
    filed(client, device, called_number="+8613500135000", contact_consent=True, contact="13500135000",
          content="a loan offer", reporter_region="0755")
    stored = str(redis_state(redis_client))  # every key with its content
    assert "a loan offer" in stored and "13500135000" not in stored


def test_the_dashboard_shows_cases_per_agency_and_status(client, new_device, finance, store):
    from tests.test_admin import login, page

    for n in range(3):
        filed(client, new_device(), f"+861380013{n:04d}")
    rejected = filed(client, new_device(), FRAUD, "fraud")["case_id"]
    police = bearer(store, "mps", "regulator", "police")
    step(client, police, rejected, "rejected")
    assert login(client, apikeys.create(store, "ops", "admin")).status_code == 303
    table = page(client).split('id="cases"')[1].split("</table>")[0]
    finance_row = table.split('data-agency="finance"')[1].split("</tr>")[0]
    police_row = table.split('data-agency="police"')[1].split("</tr>")[0]
    assert [cell.split("<")[0] for cell in finance_row.split('<td class="n">')[1:]] == ["3", "0", "0", "0"]
    assert [cell.split("<")[0] for cell in police_row.split('<td class="n">')[1:]] == ["0", "0", "0", "1"]


@pytest.mark.parametrize("tag", ["fraud", "loan"])
def test_a_called_number_that_is_no_number_is_400_and_casts_no_vote(client, device, redis_client, tag):
    client.get("/v1/tags")
    before = redis_state(redis_client)
    assert_error(complain(client, device, tag=tag, called_number="12"), 400, "invalid_number")
    assert redis_state(redis_client) == before


@pytest.mark.parametrize("scope, agency", [("regulator", None), ("regulator", "nowhere"), ("feed", "finance")])
def test_a_regulator_key_names_one_agency_of_the_table_and_no_other_key_does(store, scope, agency):
    from blocklist.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        apikeys.create(store, "k", scope, agency)
    assert apikeys.list_keys(store) == []


def test_the_cli_creates_a_regulator_key_for_its_agency(app, store):
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", "pboc", "--scope", "regulator",
                                                "--agency", "finance"])
    assert result.exit_code == 0, result.output
    assert "for agency 'finance'" in result.output
    assert [(k["name"], k["scope"], k["agency"]) for k in apikeys.list_keys(store)] == [("pboc", "regulator",
                                                                                          "finance")]
    refused = app.test_cli_runner().invoke(args=["keys", "create", "--name", "x", "--scope", "regulator"])
    assert refused.exit_code != 0 and "--agency" in refused.output


def test_a_case_says_its_first_and_last_complaint_and_its_last_activity(client, new_device, finance, clock):
    case_id = filed(client, new_device())["case_id"]
    clock.advance(seconds=60)
    filed(client, new_device())
    clock.advance(seconds=60)
    case = step(client, finance, case_id, "verifying").get_json()
    assert case["first_complaint_at"] == iso(clock() - 120) and case["last_complaint_at"] == iso(clock() - 60)
    assert case["last_activity_at"] == iso(clock())


def test_a_bad_routing_table_stops_the_start_naming_its_line(config, tmp_path):
    from blocklist.routing import RoutingError
    from blocklist.web import create_app

    bad = tmp_path / "routing.yaml"
    bad.write_text("agencies:\n  finance: {zh: 金融, en: Finance}\nroutes:\n  lone: finance\ndefault: finance\n")
    with pytest.raises(RoutingError, match="line 4"):
        create_app(config.replace(routing_file=str(bad)))


@pytest.mark.parametrize("text", ["nan 0-0123456789abcdef", "inf 0-0123456789abcdef", "1.0 not-a-case", "\xff"])
def test_a_cursor_this_service_never_gave_is_400(client, admin, text):
    import base64

    cursor = base64.urlsafe_b64encode(text.encode("latin-1")).decode().rstrip("=")
    assert_error(client.get(f"/v1/regulator/cases?cursor={cursor}", headers=admin), 400, "validation_error")
