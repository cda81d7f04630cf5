"""The FTC Do-Not-Call import, on a slice of the real file and on small hand-made files."""
from __future__ import annotations

import csv
import os
import re
from datetime import datetime, timezone

import phonenumbers
import pytest

from blocklist import reputation, tags
from tests.support import redis_state

FTC_FILE = "dnc-reported-calls-2021-07-07.csv"
SLICE_ROWS = 300
HEADER = ("Company_Phone_Number,Created_Date,Violation_Date,Consumer_City,Consumer_State,"
          "Consumer_Area_Code,Subject,Recorded_Message_Or_Robocall")


@pytest.fixture
def ftc_slice(ftc_dir, tmp_path) -> str:
    """The header and the first SLICE_ROWS rows of a real FTC file, byte for byte."""
    path = tmp_path / "slice.csv"
    with open(os.path.join(ftc_dir, FTC_FILE), "rb") as source, open(path, "wb") as out:
        for _ in range(SLICE_ROWS + 1):
            out.write(source.readline())
    return str(path)


def invoke(app, *args: str):
    # The app context is pushed here because the service's `import` group is a plain
    # click.Group (see test_import_runs_under_the_flask_test_cli_runner_alone).
    with app.app_context():
        return app.test_cli_runner().invoke(args=["import", "ftc-dnc", *args])


@pytest.fixture
def run_import(app):
    def run(*args: str) -> dict[str, int]:
        result = invoke(app, *args)
        assert result.exit_code == 0, (result.output, result.exception)
        return summary_of(result.stdout)

    return run


def summary_of(stdout: str) -> dict[str, int]:
    summary = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"\s*([^:]+): (\d+)", line)
        assert match, f"stdout carries only the summary, got {line!r}"
        summary[match.group(1)] = int(match.group(2))
    return summary


def write_csv(tmp_path, rows: list[tuple[str, str, str]], name: str = "made.csv") -> str:
    """A file in the FTC format from (number, Created_Date, Subject) rows."""
    path = tmp_path / name
    with open(path, "w", newline="") as f:
        f.write(HEADER + "\n")
        writer = csv.writer(f)
        for number, created, subject in rows:
            writer.writerow([number, created, "2021-07-06 11:48:00", "", "California", "510", subject, ""])
    return str(path)


def slice_rows(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def us_e164(raw: str) -> str | None:
    """Independent of the service: the E.164 form of a valid US-region number, else None."""
    try:
        parsed = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return None
    if parsed.extension or not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def stored_numbers(redis_client) -> set[str]:
    return {key.rsplit(":", 1)[1] for key in redis_client.scan_iter(match="cm:n:*", count=1000)}


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def seen(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the real file ------------------------------------------------------------------------------

def test_import_of_a_real_slice_prints_the_summary(run_import, ftc_slice):
    rows = slice_rows(ftc_slice)
    assert len(rows) == SLICE_ROWS
    blank = sum(1 for row in rows if not row["Company_Phone_Number"].strip())
    valid = sum(1 for row in rows if row["Company_Phone_Number"].strip() and us_e164(row["Company_Phone_Number"]))
    assert blank > 0 and valid < SLICE_ROWS - blank  # the slice holds both kinds of bad rows

    summary = run_import(ftc_slice)
    assert summary["rows"] == SLICE_ROWS
    assert summary["imported"] == valid
    assert summary["already imported"] == 0
    assert summary["skipped"] == SLICE_ROWS - valid
    assert summary["blank number"] == blank
    invalid = {reason: count for reason, count in summary.items() if reason.startswith("invalid number")}
    assert sum(invalid.values()) == SLICE_ROWS - valid - blank


def test_import_stores_every_valid_row_as_one_reporter(run_import, ftc_slice, redis_client, store):
    rows = slice_rows(ftc_slice)
    expected = {}
    for row in rows:
        e164 = us_e164(row["Company_Phone_Number"].strip()) if row["Company_Phone_Number"].strip() else None
        if e164:
            expected[e164] = expected.get(e164, 0) + 1
    summary = run_import(ftc_slice)
    assert stored_numbers(redis_client) == set(expected)
    got = {number: reputation.lookup(store, number)["reporters"] for number in expected}
    assert got == expected
    assert sum(got.values()) == summary["imported"]


def test_import_skips_blank_and_invalid_numbers(run_import, ftc_slice, redis_client):
    run_import(ftc_slice)
    stored = stored_numbers(redis_client)
    for row in slice_rows(ftc_slice):
        raw = row["Company_Phone_Number"].strip()
        if raw and not us_e164(raw):
            digits = re.sub(r"\D", "", raw)
            assert not any(digits in number for number in stored), raw
    assert all(us_e164(number) == number for number in stored)


def test_every_imported_number_gets_a_spam_verdict(run_import, ftc_slice, redis_client, store):
    run_import(ftc_slice, "--dated-now")
    for number in stored_numbers(redis_client):
        body = reputation.lookup(store, number)
        assert body["verdict"] in ("warn", "block"), (number, body)
        assert tags.BY_CODE[body["label"]].kind == tags.SPAM


def test_reimporting_the_same_file_counts_nothing_twice(run_import, ftc_slice, redis_client):
    first = run_import(ftc_slice)
    state = redis_state(redis_client)
    second = run_import(ftc_slice)
    assert second["imported"] == 0
    assert second["already imported"] == first["imported"]
    assert second["rows"] == first["rows"]
    assert second["skipped"] == first["skipped"]
    assert redis_state(redis_client) == state


def test_reimporting_with_dated_now_counts_nothing_twice(run_import, ftc_slice, store):
    first = run_import(ftc_slice)
    second = run_import(ftc_slice, "--dated-now")
    assert second["imported"] == 0
    assert second["already imported"] == first["imported"]


def test_reports_are_dated_by_created_date(run_import, ftc_slice, store):
    rows = [row for row in slice_rows(ftc_slice) if row["Company_Phone_Number"] == "8668648918"]
    assert len(rows) == 3
    run_import(ftc_slice)
    body = reputation.lookup(store, "+18668648918")
    assert body["reporters"] == 3
    assert seen(body["first_seen"]) == min(utc(row["Created_Date"]) for row in rows)
    assert seen(body["last_seen"]) == max(utc(row["Created_Date"]) for row in rows)
    assert body["verdict"] == "warn"  # 2021 evidence has decayed far below a block


def test_dated_now_dates_reports_at_the_clock(run_import, ftc_slice, store, clock, redis_client):
    run_import(ftc_slice, "--dated-now")
    now = datetime.fromtimestamp(clock.now, tz=timezone.utc)
    for number in sorted(stored_numbers(redis_client))[:20] + ["+18668648918"]:
        body = reputation.lookup(store, number)
        assert seen(body["first_seen"]) == now
        assert seen(body["last_seen"]) == now
    body = reputation.lookup(store, "+18668648918")
    assert body["verdict"] == "block"  # three fresh complaints
    assert body["score"] == 3.0


def test_progress_goes_to_stderr_and_stdout_only_carries_the_summary(app, ftc_slice):
    result = invoke(app, ftc_slice)
    assert result.exit_code == 0
    assert "importing" in result.stderr
    assert "importing" not in result.stdout
    assert summary_of(result.stdout)["rows"] == SLICE_ROWS


# --- hand-made files ----------------------------------------------------------------------------

def test_identical_rows_are_separate_complaints(run_import, tmp_path, store):
    row = ("2025550143", "2021-07-07 00:01:15", "Other")
    summary = run_import(write_csv(tmp_path, [row, row, row]), "--dated-now")
    assert summary["imported"] == 3
    body = reputation.lookup(store, "+12025550143")
    assert body["reporters"] == 3
    assert body["verdict"] == "block"


def test_two_files_with_the_same_number_count_both(run_import, tmp_path, store):
    a = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")], "a.csv")
    b = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:16", "Other")], "b.csv")
    summary = run_import(a, b)
    assert summary["imported"] == 2
    assert reputation.lookup(store, "+12025550143")["reporters"] == 2


@pytest.mark.parametrize("subject, tag", [
    ("Dropped call or no message", "silent"),
    ("No Subject Provided", "harassment"),
    ("Other", "harassment"),
    ("Warranties  & protection plans", "insurance"),
    ("Warranties & protection plans", "insurance"),
    ("Medical  & prescriptions", "health"),
    ("Calls pretending to be government, businesses, or family and friends", "fraud"),
    ("Lotteries, prizes & sweepstakes", "fraud"),
    ("Reducing your debt (credit cards, mortgage, student loans)", "loan"),
    ("Vacation  & timeshares", "travel"),
    ("", "harassment"),
])
def test_subject_maps_to_a_spam_tag(run_import, tmp_path, store, subject, tag):
    run_import(write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", subject)]))
    body = reputation.lookup(store, "+12025550143")
    assert body["label"] == tag
    assert body["verdict"] == "warn"


def test_an_unknown_subject_still_maps_to_a_spam_tag(run_import, tmp_path, store):
    run_import(write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Something the FTC adds later")]))
    label = reputation.lookup(store, "+12025550143")["label"]
    assert tags.BY_CODE[label].kind == tags.SPAM


def test_rows_with_a_bad_created_date_are_skipped_and_counted(run_import, tmp_path, redis_client):
    path = write_csv(tmp_path, [("2025550143", "yesterday", "Other"), ("2025550144", "2021-07-07 00:01:15", "Other")])
    summary = run_import(path)
    assert summary["rows"] == 2
    assert summary["imported"] == 1
    assert summary["skipped"] == 1
    assert summary["invalid Created_Date"] == 1
    assert stored_numbers(redis_client) == {"+12025550144"}


def test_rows_with_blank_or_invalid_numbers_are_skipped_and_counted(run_import, tmp_path, redis_client):
    path = write_csv(tmp_path, [("", "2021-07-07 00:01:15", "Other"), ("   ", "2021-07-07 00:01:15", "Other"),
                                ("70611454600144", "2021-07-07 00:01:15", "Other"),
                                ("911", "2021-07-07 00:01:15", "Other"),
                                ("abc", "2021-07-07 00:01:15", "Other"),
                                ("2025550143", "2021-07-07 00:01:15", "Other")])
    summary = run_import(path)
    assert summary["rows"] == 6
    assert summary["imported"] == 1
    assert summary["skipped"] == 5
    assert summary["blank number"] == 2
    assert sum(v for k, v in summary.items() if k.startswith("invalid number")) == 3
    assert stored_numbers(redis_client) == {"+12025550143"}


def test_out_of_order_rows_keep_first_and_last_seen_in_order(run_import, tmp_path, store):
    path = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other"),
                                ("2025550143", "2019-12-13 09:00:00", "Other")])
    run_import(path)
    body = reputation.lookup(store, "+12025550143")
    assert seen(body["first_seen"]) == utc("2019-12-13 09:00:00")
    assert seen(body["last_seen"]) == utc("2021-07-07 00:01:15")


def test_a_file_that_is_not_an_ftc_file_is_refused_and_writes_nothing(app, tmp_path, redis_client):
    path = tmp_path / "other.csv"
    path.write_text("name,phone\nAda,2025550143\n")
    before = redis_state(redis_client)
    result = invoke(app, str(path))
    assert result.exit_code != 0
    assert redis_state(redis_client) == before


def test_a_missing_file_is_refused(app, tmp_path):
    result = invoke(app, str(tmp_path / "nope.csv"))
    assert result.exit_code != 0


def test_import_runs_under_the_flask_test_cli_runner_alone(app, tmp_path, store):
    path = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")])
    result = app.test_cli_runner().invoke(args=["import", "ftc-dnc", path])
    assert result.exit_code == 0, result.exception
    assert summary_of(result.stdout)["imported"] == 1
