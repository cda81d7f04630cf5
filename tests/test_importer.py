"""The FTC Do-Not-Call import, on slices of the real files and on small hand-made files."""
from __future__ import annotations

import csv
import math
import os
import re
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import phonenumbers
import pytest

from blocklist import importer, reputation, tags
from tests.support import redis_state

FTC_FILE = "dnc-reported-calls-2021-07-07.csv"
NINETY_DAY_FILE = "dnc-90day-numbers-2025-12-11.csv"
SLICE_ROWS = 300
NINETY_DAY_SLICE_ROWS = 3000
HALF_LIFE_DAYS = 90  # the default CALLMARK_HALF_LIFE_DAYS the tests run with
HEADER = ("Company_Phone_Number,Created_Date,Violation_Date,Consumer_City,Consumer_State,"
          "Consumer_Area_Code,Subject,Recorded_Message_Or_Robocall")


def head_of(source: str, path, rows: int) -> str:
    """The header and the first `rows` rows of `source`, byte for byte, written to `path`."""
    with open(source, "rb") as f, open(path, "wb") as out:
        for _ in range(rows + 1):
            out.write(f.readline())
    return str(path)


@pytest.fixture
def ftc_slice(ftc_dir, tmp_path) -> str:
    """The first SLICE_ROWS rows of a real daily file."""
    return head_of(os.path.join(ftc_dir, FTC_FILE), tmp_path / "slice.csv", SLICE_ROWS)


@pytest.fixture
def ninety_day_slice(ftc_dir, tmp_path) -> str:
    """The first NINETY_DAY_SLICE_ROWS rows of the real 90-day file, under its own name (its day)."""
    return head_of(os.path.join(ftc_dir, NINETY_DAY_FILE), tmp_path / NINETY_DAY_FILE, NINETY_DAY_SLICE_ROWS)


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


def write_90day(tmp_path, patterns: list[str], name: str) -> str:
    """A file in the 90-day format (header `pattern`, CRLF lines, as published)."""
    path = tmp_path / name
    path.write_bytes(("pattern\r\n" + "".join(f"{p}\r\n" for p in patterns)).encode())
    return str(path)


def slice_rows(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def patterns_of(path: str) -> list[str]:
    with open(path, newline="") as f:
        return [row["pattern"] for row in csv.DictReader(f)]


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


def now_of(clock) -> datetime:
    return datetime.fromtimestamp(clock.now, tz=timezone.utc)


def day_before(clock, days: int) -> date:
    return (now_of(clock) - timedelta(days=days)).date()


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def assert_decayed(body: dict, complaints: int, dated: datetime, now: datetime) -> None:
    """Old complaints leave a small, non-negative, finite score: at most what they would
    keep after decaying from `dated` to `now`, and never a block."""
    fresh_share = 2 ** (-(now - dated).total_seconds() / 86400 / HALF_LIFE_DAYS)
    bound = complaints * fresh_share * 1.01 + 0.002 * complaints
    scores = [body["score"]] + [tag["score"] for tag in body["tags"].values()]
    assert all(math.isfinite(s) and 0 <= s <= bound for s in scores), (body, bound)
    assert body["verdict"] != "block", body


# --- the real daily file ------------------------------------------------------------------------

def test_import_of_a_real_slice_prints_the_summary(run_import, ftc_slice):
    rows = slice_rows(ftc_slice)
    assert len(rows) == SLICE_ROWS
    blank = sum(1 for row in rows if not row["Company_Phone_Number"].strip())
    valid = [us_e164(row["Company_Phone_Number"]) for row in rows if row["Company_Phone_Number"].strip()]
    valid = [number for number in valid if number]
    assert blank > 0 and len(valid) < SLICE_ROWS - blank  # the slice holds both kinds of bad rows

    summary = run_import(ftc_slice)
    assert summary["files"] == 1
    assert summary["rows"] == SLICE_ROWS
    assert summary["imported"] == len(valid)
    assert summary["re-dated"] == 0
    assert summary["already imported"] == 0
    assert summary["numbers"] == len(set(valid))
    assert summary["skipped"] == SLICE_ROWS - len(valid)
    assert summary["blank number"] == blank
    invalid = {reason: count for reason, count in summary.items() if reason.startswith("invalid number")}
    assert sum(invalid.values()) == SLICE_ROWS - len(valid) - blank


def test_import_stores_every_valid_row_as_one_reporter(run_import, ftc_slice, redis_client, store):
    rows = slice_rows(ftc_slice)
    expected = Counter(us_e164(row["Company_Phone_Number"].strip()) for row in rows
                       if row["Company_Phone_Number"].strip())
    del expected[None]
    summary = run_import(ftc_slice, "--dated-now")
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
    assert second["imported"] == 0 and second["re-dated"] == 0
    assert second["already imported"] == first["imported"]
    assert second["rows"] == first["rows"]
    assert second["skipped"] == first["skipped"]
    assert redis_state(redis_client) == state


def test_reimporting_with_dated_now_in_the_same_hour_changes_nothing(run_import, ftc_slice, redis_client, clock):
    first = run_import(ftc_slice, "--dated-now")
    state = redis_state(redis_client)
    clock.advance(seconds=60)
    second = run_import(ftc_slice, "--dated-now")
    assert second["imported"] == 0 and second["re-dated"] == 0
    assert second["already imported"] == first["imported"]
    assert redis_state(redis_client) == state


def test_reports_are_dated_by_created_date(run_import, ftc_slice, store, clock):
    rows = [row for row in slice_rows(ftc_slice) if row["Company_Phone_Number"] == "8668648918"]
    assert len(rows) == 3
    run_import(ftc_slice)
    body = reputation.lookup(store, "+18668648918")
    assert seen(body["first_seen"]) == min(utc(row["Created_Date"]) for row in rows)
    assert seen(body["last_seen"]) == max(utc(row["Created_Date"]) for row in rows)
    assert_decayed(body, 3, min(utc(row["Created_Date"]) for row in rows), now_of(clock))


def test_old_complaints_of_a_real_slice_leave_small_finite_scores(run_import, ftc_slice, store, clock):
    counts = Counter(us_e164(row["Company_Phone_Number"].strip()) for row in slice_rows(ftc_slice)
                     if row["Company_Phone_Number"].strip())
    del counts[None]
    earliest = min(utc(row["Created_Date"]) for row in slice_rows(ftc_slice))
    run_import(ftc_slice)
    for body in reputation.lookup_many(store, sorted(counts)):
        assert_decayed(body, counts[body["number"]], earliest, now_of(clock))


def test_dated_now_dates_reports_at_the_clock(run_import, ftc_slice, store, clock, redis_client):
    run_import(ftc_slice, "--dated-now")
    now = now_of(clock)
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
    assert "\r" not in result.stderr  # no bar is drawn where stderr is not a terminal
    assert summary_of(result.stdout)["rows"] == SLICE_ROWS


# --- re-dating ----------------------------------------------------------------------------------

def test_dated_now_after_a_dated_import_re_dates_every_complaint(run_import, ftc_slice, store, clock, redis_client):
    counts = Counter(us_e164(row["Company_Phone_Number"].strip()) for row in slice_rows(ftc_slice)
                     if row["Company_Phone_Number"].strip())
    del counts[None]
    first = run_import(ftc_slice)
    second = run_import(ftc_slice, "--dated-now")
    assert second["re-dated"] == first["imported"]
    assert second["imported"] == 0
    assert second["already imported"] == 0
    assert second["skipped"] == first["skipped"]
    assert stored_numbers(redis_client) == set(counts)
    bodies = reputation.lookup_many(store, sorted(counts))
    assert {body["number"]: body["reporters"] for body in bodies} == counts  # each complaint once
    assert all(seen(body["last_seen"]) == now_of(clock) for body in bodies)
    body = reputation.lookup(store, "+18668648918")
    assert body["verdict"] == "block"
    assert body["score"] == 3.0


def test_re_dating_and_dating_back_counts_every_complaint_once(run_import, ftc_slice, store, clock):
    run_import(ftc_slice, "--dated-now")
    clock.advance(days=1)
    again = run_import(ftc_slice, "--dated-now")
    assert again["imported"] == 0 and again["re-dated"] > 0
    body = reputation.lookup(store, "+18668648918")
    assert body["reporters"] == 3 and body["score"] == 3.0
    assert seen(body["last_seen"]) == now_of(clock)
    back = run_import(ftc_slice)
    assert back["re-dated"] == again["re-dated"] and back["imported"] == 0
    body = reputation.lookup(store, "+18668648918")
    assert body["verdict"] != "block"
    assert body["score"] < 0.01


def test_an_interrupted_re_dating_is_finished_by_the_next_import(app, run_import, ftc_slice, store, clock,
                                                                 monkeypatch):
    first = run_import(ftc_slice)
    monkeypatch.setattr(importer, "PIPELINE_BATCH", 50)

    class Stop(Exception):
        pass

    def stop(rows: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        importer.import_ftc(store, [ftc_slice], dated_now=True, progress=stop)
    rest = run_import(ftc_slice, "--dated-now")
    assert 0 < rest["re-dated"] < first["imported"]
    assert rest["already imported"] == first["imported"] - rest["re-dated"]
    body = reputation.lookup(store, "+18668648918")
    assert body["reporters"] == 3 and body["score"] == 3.0 and body["verdict"] == "block"


def test_the_90_day_file_is_re_dated_by_the_date_option(run_import, tmp_path, store, clock):
    old = day_before(clock, 200)
    path = write_90day(tmp_path, ["2025550143"] * 3, f"dnc-90day-numbers-{old}.csv")
    first = run_import(path)
    assert first["imported"] == 3
    recent = day_before(clock, 1)
    second = run_import(path, "--date", recent.isoformat())
    assert second["re-dated"] == 3 and second["imported"] == 0
    body = reputation.lookup(store, "+12025550143")
    assert body["reporters"] == 3
    assert seen(body["last_seen"]) == midnight(recent)
    assert body["verdict"] == "block"


def test_a_file_named_twice_is_imported_once(run_import, tmp_path, store):
    path = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")])
    summary = run_import(path, path, "--dated-now")
    assert summary["files"] == 1
    assert summary["imported"] == 1
    assert reputation.lookup(store, "+12025550143")["reporters"] == 1


def test_numbers_imported_now_are_in_the_published_lists(app, run_import, ftc_slice, store):
    run_import(ftc_slice, "--dated-now")
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["lists", "publish"])
    assert result.exit_code == 0, result.output
    assert store.redis.sismember(store.keys.list_members("spam"), "+18668648918")


# --- the 90-day file ----------------------------------------------------------------------------

def test_a_real_90_day_slice_is_one_complaint_per_valid_row(run_import, ninety_day_slice, store, redis_client):
    patterns = patterns_of(ninety_day_slice)
    assert len(patterns) == NINETY_DAY_SLICE_ROWS
    expected = Counter(us_e164(pattern) for pattern in patterns)
    del expected[None]
    assert 0 < sum(expected.values()) < NINETY_DAY_SLICE_ROWS and max(expected.values()) > 1

    summary = run_import(ninety_day_slice, "--dated-now")
    assert summary["rows"] == NINETY_DAY_SLICE_ROWS
    assert summary["imported"] == sum(expected.values())
    assert summary["numbers"] == len(expected)
    assert summary["skipped"] == NINETY_DAY_SLICE_ROWS - sum(expected.values())
    assert sum(v for k, v in summary.items() if k.startswith("invalid number")) == summary["skipped"]
    assert stored_numbers(redis_client) == set(expected)
    bodies = reputation.lookup_many(store, sorted(expected))
    assert {body["number"]: body["reporters"] for body in bodies} == expected
    assert {body["label"] for body in bodies} == {importer.UNKNOWN_SUBJECT_TAG}


def test_the_real_90_day_file_is_dated_by_the_day_in_its_name(run_import, ninety_day_slice, store, clock):
    expected = Counter(us_e164(pattern) for pattern in patterns_of(ninety_day_slice))
    del expected[None]
    run_import(ninety_day_slice)
    dated = midnight(date(2025, 12, 11))
    for body in reputation.lookup_many(store, sorted(expected)):
        assert seen(body["first_seen"]) == dated == seen(body["last_seen"])
        assert_decayed(body, expected[body["number"]], dated, now_of(clock))


def test_90_day_patterns_are_read_as_us_numbers(run_import, tmp_path, store, redis_client, clock):
    path = write_90day(tmp_path, ["2025550143", "12025550143", "011442079460958", "  ", "911", "2991577",
                                  "525556979284", "20255501432025550144"],
                       f"dnc-90day-numbers-{day_before(clock, 3)}.csv")
    summary = run_import(path)
    assert summary["rows"] == 8
    assert summary["imported"] == 3
    assert summary["numbers"] == 2
    assert summary["blank number"] == 1
    assert summary["skipped"] == 5
    assert stored_numbers(redis_client) == {"+12025550143", "+442079460958"}
    assert reputation.lookup(store, "+12025550143")["reporters"] == 2


def test_90_day_rows_are_tagged_as_complaints_of_unknown_subject(run_import, tmp_path, store, clock):
    assert importer.UNKNOWN_SUBJECT_TAG == importer.subject_tag("No Subject Provided")
    path = write_90day(tmp_path, ["2025550143"], f"dnc-90day-numbers-{day_before(clock, 3)}.csv")
    run_import(path)
    body = reputation.lookup(store, "+12025550143")
    assert body["label"] == importer.UNKNOWN_SUBJECT_TAG
    assert body["verdict"] == "warn"


def test_the_date_option_dates_every_row(run_import, tmp_path, store, clock):
    day = day_before(clock, 10)
    path = write_90day(tmp_path, ["2025550143", "2025550143"], "numbers.csv")
    summary = run_import(path, "--date", day.isoformat())
    assert summary["imported"] == 2
    body = reputation.lookup(store, "+12025550143")
    assert seen(body["first_seen"]) == midnight(day) == seen(body["last_seen"])


def test_the_date_option_dates_a_daily_file_too(run_import, tmp_path, store, clock):
    day = day_before(clock, 10)
    run_import(write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")]), "--date", day.isoformat())
    assert seen(reputation.lookup(store, "+12025550143")["last_seen"]) == midnight(day)


def test_a_90_day_file_with_no_day_is_refused_and_writes_nothing(app, tmp_path, redis_client):
    path = write_90day(tmp_path, ["2025550143"], "numbers.csv")
    before = redis_state(redis_client)
    assert_refused(invoke(app, path), "numbers.csv", "--date")
    assert redis_state(redis_client) == before


def test_a_day_in_the_future_is_refused(app, tmp_path, redis_client, clock):
    path = write_90day(tmp_path, ["2025550143"], "numbers.csv")
    tomorrow = (now_of(clock) + timedelta(days=1)).date().isoformat()
    assert_refused(invoke(app, path, "--date", tomorrow), tomorrow)
    future = write_90day(tmp_path, ["2025550143"], f"dnc-90day-numbers-{tomorrow}.csv")
    assert_refused(invoke(app, future), tomorrow)
    assert stored_numbers(redis_client) == set()


def test_date_and_dated_now_exclude_each_other(app, tmp_path, redis_client, clock):
    path = write_90day(tmp_path, ["2025550143"], "numbers.csv")
    result = invoke(app, path, "--dated-now", "--date", day_before(clock, 1).isoformat())
    assert result.exit_code == 2
    assert "--dated-now" in result.output and "Traceback" not in result.output
    assert stored_numbers(redis_client) == set()


# --- hand-made daily files ----------------------------------------------------------------------

def test_identical_rows_are_separate_complaints(run_import, tmp_path, store):
    row = ("2025550143", "2021-07-07 00:01:15", "Other")
    summary = run_import(write_csv(tmp_path, [row, row, row]), "--dated-now")
    assert summary["imported"] == 3
    assert summary["numbers"] == 1
    body = reputation.lookup(store, "+12025550143")
    assert body["reporters"] == 3
    assert body["verdict"] == "block"


def test_two_files_with_the_same_number_count_both(run_import, tmp_path, store):
    a = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")], "a.csv")
    b = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:16", "Other")], "b.csv")
    summary = run_import(a, b, "--dated-now")
    assert summary["files"] == 2
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
    run_import(write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", subject)]), "--dated-now")
    body = reputation.lookup(store, "+12025550143")
    assert body["label"] == tag
    assert body["verdict"] == "warn"


def test_an_unknown_subject_still_maps_to_a_spam_tag(run_import, tmp_path, store):
    run_import(write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Something the FTC adds later")]),
               "--dated-now")
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


def test_import_runs_under_the_flask_test_cli_runner_alone(app, tmp_path, store):
    path = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")])
    result = app.test_cli_runner().invoke(args=["import", "ftc-dnc", path])
    assert result.exit_code == 0, result.exception
    assert summary_of(result.stdout)["imported"] == 1


# --- files that cannot be read ------------------------------------------------------------------

def assert_refused(result, *words: str) -> None:
    """Exit code 1 and one line, `Error: ...`, naming `words`; no traceback, no summary."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert all(word in lines[0] for word in words), (lines[0], words)


def _missing(tmp_path):
    return tmp_path / "nope.csv"


def _directory(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    return folder


def _empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    return path


def _blank_lines(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_bytes(b"\r\n \r\n\n")
    return path


def _binary(tmp_path):
    path = tmp_path / "picture.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")
    return path


def _undecodable(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n2025550143,2021-07-07 00:01:15,2021-07-06 11:48:00,Z\xfcrich,,510,Other,\n")
                     .encode("latin-1"))
    return path


def _unknown_header(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,phone\nAda,2025550143\n")
    return path


def _json(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text('{"numbers": ["2025550143"]}\n')
    return path


def _broken_csv(tmp_path):
    path = tmp_path / "huge-field.csv"
    path.write_text("pattern\n" + "9" * 200_000 + "\n")
    return path


@pytest.mark.parametrize("make, words", [
    (_missing, ("nope.csv", "no such file")),
    (_directory, ("folder.csv", "directory")),
    (_empty, ("empty.csv", "empty")),
    (_blank_lines, ("blank.csv", "empty")),
    (_binary, ("picture.csv", "binary")),
    (_undecodable, ("latin1.csv", "UTF-8", "line 2")),
    (_unknown_header, ("other.csv", "header", "name,phone")),
    (_json, ("numbers.json", "header")),
    (_broken_csv, ("huge-field.csv", "CSV")),
], ids=lambda value: getattr(value, "__name__", "")[1:] or None)
def test_a_file_that_cannot_be_read_is_one_error_line_and_writes_nothing(app, tmp_path, redis_client,
                                                                         make, words):
    before = redis_state(redis_client)
    assert_refused(invoke(app, str(make(tmp_path))), *words)
    assert redis_state(redis_client) == before


def test_a_bad_file_after_a_good_one_writes_nothing(app, tmp_path, redis_client):
    good = write_csv(tmp_path, [("2025550143", "2021-07-07 00:01:15", "Other")])
    before = redis_state(redis_client)
    assert_refused(invoke(app, good, str(_unknown_header(tmp_path))), "other.csv")
    assert redis_state(redis_client) == before


def test_re_dating_counts_each_complaint_once_in_the_statistics(run_import, ftc_slice, store, clock):
    from blocklist import stats

    def reports_today() -> int:
        today = datetime.fromtimestamp(clock.now, tz=timezone.utc).date().isoformat()
        return stats.summary(store, today, today)["reports"]

    first = run_import(ftc_slice, "--dated-now")
    assert reports_today() == first["imported"]
    clock.advance(seconds=3 * 3600)  # a later hour of the same day: every vote moves
    again = run_import(ftc_slice, "--dated-now")
    assert again["re-dated"] == first["imported"]
    assert reports_today() == first["imported"]  # moved, not counted again
