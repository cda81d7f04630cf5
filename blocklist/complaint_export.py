"""Complaint exports for regulators (`GET /v1/regulator/complaints/export`), streamed a batch at
a time in constant memory:

- `csv` and `ndjson`: the 12321 form's fields (COLUMNS), with the case each complaint is in,
  where that case is now and its status;
- `ftc`: exactly the FTC "Reported Calls" columns (FTC_COLUMNS), so that every tool that reads
  the FTC's data reads ours, and `flask --app app import ftc-dnc` reads it back. North American
  numbers are written as the FTC writes them, 10 digits; others as +E.164.

A regulator key exports its agency's complaints (those whose case is at the agency now); an
admin key every agency's.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from itertools import islice
from typing import Any, Iterator

from . import complaints, importer
from .complaints import CASE
from .store import Store

FORMATS = ("csv", "ndjson", "ftc")
COLUMNS = ("complaint_id", "received_at", "call_at", "number", "company", "tag", "tag_zh", "call_type", "content",
           "duration_seconds", "dnc_registered", "dnc_violation", "reporter_region", "agency", "case_id",
           "case_status")
FTC_COLUMNS = ("Company_Phone_Number", "Created_Date", "Violation_Date", "Consumer_City", "Consumer_State",
               "Consumer_Area_Code", "Subject", "Recorded_Message_Or_Robocall")
BATCH = 1000  # complaints per round trip of records and per round trip of their cases
FTC_TIME = "%Y-%m-%d %H:%M:%S"
# Our tag -> the FTC subject that the importer reads back as the same tag; tags the FTC has
# no subject for are "Other" (which the importer reads as harassment).
FTC_SUBJECTS: dict[str, str] = {}
for _subject, _tag in importer.FTC_SUBJECT_TAGS.items():
    FTC_SUBJECTS.setdefault(_tag, _subject)
FTC_SUBJECTS["harassment"] = "Other"
ROBOCALL_TYPES = ("recorded", "robocall")  # what the FTC's Recorded_Message_Or_Robocall says Y to


def rows(store: Store, agency: str | None, start: float, end: float) -> Iterator[dict[str, Any]]:
    """The complaints received in [start, end), oldest first, as COLUMNS dicts; `agency`: only
    those whose case is at that agency now (None: all)."""
    found = complaints.received_between(store, start, end, BATCH)
    while batch := list(islice(found, BATCH)):
        cases = complaints.statuses(store, batch)
        for complaint_id, record in batch:
            at, status = cases.get(record.get(CASE, ""), (record.get(complaints.FIELDS["agency"], ""), ""))
            if agency is not None and at != agency:
                continue
            shown = complaints.shown(store, complaint_id, record)
            shown.update(agency=at, case_status=status or None)
            yield {column: shown.get(column) for column in COLUMNS}


def _csv(header: tuple[str, ...], records: Iterator[list]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for batch in _batches(records):
        writer.writerows(batch)
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if out.tell():
        yield out.getvalue().encode()  # the header of an empty export


def _batches(items: Iterator, size: int = BATCH) -> Iterator[list]:
    while batch := list(islice(items, size)):
        yield batch


def _cell(value: Any) -> Any:
    return "" if value is None else ("true" if value is True else "false" if value is False else value)


def _ftc_time(iso_time: str | None) -> str:
    return datetime.fromisoformat(iso_time).astimezone(timezone.utc).strftime(FTC_TIME) if iso_time else ""


def ftc_row(row: dict[str, Any]) -> list[str]:
    """One complaint in the FTC's columns."""
    number = row["number"]
    region = row["reporter_region"] or ""
    return [number[2:] if number.startswith("+1") and len(number) == 12 else number,
            _ftc_time(row["received_at"]), _ftc_time(row["call_at"]), "",
            "" if region.isdigit() else region, region if region.isdigit() else "",
            FTC_SUBJECTS.get(row["tag"], "Other"), "Y" if row["call_type"] in ROBOCALL_TYPES else ""]


def export(store: Store, agency: str | None, start: float, end: float, fmt: str) -> Iterator[bytes]:
    """The export in `fmt` (FORMATS), as chunks of bytes."""
    found = rows(store, agency, start, end)
    if fmt == "ndjson":
        for batch in _batches(found):
            yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch).encode()
    elif fmt == "ftc":
        yield from _csv(FTC_COLUMNS, (ftc_row(row) for row in found))
    else:
        yield from _csv(COLUMNS, ([_cell(row[column]) for column in COLUMNS] for row in found))
