"""`import ftc-dnc` files every row as a complaint too: routed by the table, dated by the file
(or the clock), its call time and region from the row; a file imported again files nothing
new; rows past the retention count in the public figures and are not kept. On the real FTC
file, the monthly report's category shares are the shares of the file's subjects."""
from __future__ import annotations

import csv
import os
from collections import Counter

from blocklist import apikeys, importer, monthly
from blocklist.errors import CallMarkError
from blocklist.numbers import normalize

HEADER = ("Company_Phone_Number,Created_Date,Violation_Date,Consumer_City,Consumer_State,Consumer_Area_Code,"
          "Subject,Recorded_Message_Or_Robocall\n")


def write(tmp_path, rows: list[str], name: str = "calls.csv") -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return str(path)


def cases(client, store) -> list[dict]:
    admin = {"Authorization": f"Bearer {apikeys.create(store, 'operator', 'admin')}"}
    return client.get("/v1/regulator/cases", headers=admin).get_json()["cases"]


def exported(client, store) -> list[dict]:
    admin = {"Authorization": f"Bearer {apikeys.create(store, 'exporter', 'admin')}"}
    text = client.get("/v1/regulator/complaints/export?format=csv&from=2026-10-01&to=2026-10-28",
                      headers=admin).get_data(as_text=True)
    return list(csv.DictReader(text.splitlines()))


def test_each_row_is_a_complaint_routed_dated_and_placed_by_the_file(client, store, tmp_path):
    path = write(tmp_path, [
        '2025550143,2026-10-20 09:00:00,2026-10-19 18:30:00,Dallas,Texas,214,'
        '"Reducing your debt (credit cards, mortgage, student loans)",',
        "2025550143,2026-10-21 09:00:00,,,California,,Medical & prescriptions,Y",
        '3125550199,2026-10-22 09:00:00,2026-10-22 08:00:00,,,,"Lotteries, prizes & sweepstakes",'])
    summary = importer.import_ftc(store, [path])
    assert summary.complaints == 3 and summary.past_retention == 0
    rows = sorted(exported(client, store), key=lambda row: row["received_at"])
    assert [(r["number"], r["tag"], r["agency"]) for r in rows] == [
        ("+12025550143", "loan", "finance"), ("+12025550143", "health", "health"),
        ("+13125550199", "fraud", "police")]
    assert (rows[0]["received_at"], rows[0]["call_at"], rows[0]["reporter_region"]) == (
        "2026-10-20T09:00:00Z", "2026-10-19T18:30:00Z", "214")
    assert (rows[1]["call_at"], rows[1]["reporter_region"]) == ("2026-10-21T09:00:00Z", "California")
    assert {(c["number"], c["agency"], c["complaints"]) for c in cases(client, store)} == {
        ("+12025550143", "finance", 1), ("+12025550143", "health", 1), ("+13125550199", "police", 1)}


def test_a_file_imported_again_files_nothing_new(client, store, tmp_path):
    path = write(tmp_path, ["2025550143,2026-10-20 09:00:00,,,,,Medical & prescriptions,"] * 3)
    assert importer.import_ftc(store, [path]).complaints == 3  # identical rows: three complaints
    again = importer.import_ftc(store, [path])
    assert again.complaints == 0 and again.already_imported == 3
    assert len(exported(client, store)) == 3
    assert monthly.report(store, "2026-10")[0]["complaints"] is None  # 3: under 10, withheld


def test_rows_past_the_retention_are_counted_and_not_kept(client, store, tmp_path, clock):
    old = "2019-12-13 10:00:00"  # long before the clock's 2026: past five years
    path = write(tmp_path, [f"20255501{n:02d},{old},,,,,Medical & prescriptions," for n in range(12)]
                 + ["2025550199,2026-10-20 09:00:00,,,,,Medical & prescriptions,"])
    summary = importer.import_ftc(store, [path])
    assert (summary.complaints, summary.past_retention) == (1, 12)
    assert "past the complaint retention (counted, not kept): 12" in summary.lines()
    assert len(exported(client, store)) == 1
    assert monthly.report(store, "2019-12")[0]["complaints"] == 12


def test_the_real_files_category_shares_are_the_reports(store, ftc_dir):
    path = os.path.join(ftc_dir, "dnc-reported-calls-2021-07-07.csv")
    direct: Counter = Counter()  # the file's subjects, by the importer's mapping, of the rows with a number
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            try:
                normalize(row["Company_Phone_Number"].strip(), importer.FTC_REGION)
            except CallMarkError:
                continue
            direct[importer.subject_tag(row["Subject"])] += 1
    summary = importer.import_ftc(store, [path], dated_now=True)
    assert summary.complaints == sum(direct.values()) > 10_000
    shown = monthly.report(store, "2026-10")[0]  # the clock's month
    assert shown["complaints"] == sum(direct.values())
    assert {row["tag"]: row["complaints"] for row in shown["category_shares"]} == {
        tag: count if count >= 10 else None for tag, count in direct.items()}
    for row in shown["category_shares"]:
        if row["complaints"] is not None:
            assert row["share"] == round(direct[row["tag"]] / sum(direct.values()), 4)
