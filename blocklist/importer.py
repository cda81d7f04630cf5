"""Import the FTC Do-Not-Call "Reported Calls" files as reports.

Each valid row is one complaint from its own anonymous reporter, whose id is derived from
the file's SHA-256 and the row's position: identical rows stay separate complaints, and
importing the same file again finds every vote already cast and counts nothing twice.
"""
from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from . import devices, numbers
from .errors import InvalidNumber, ValidationFailed
from .reputation import Vote, cast_votes
from .store import Store

FTC_REGION = "US"  # the files hold North American numbers in national format
PIPELINE_BATCH = 500  # votes per round trip
UNMAPPED_SUBJECT_TAG = "harassment"  # every complaint is an unwanted call, so always spam

# FTC Subject -> our tag. Every complaint is an unwanted call, so every subject maps to a
# spam-kind tag. Subjects are compared with runs of spaces folded ("Warranties  & ...").
FTC_SUBJECT_TAGS: dict[str, str] = {
    "No Subject Provided": "harassment",
    "Other": "harassment",
    "Calls pretending to be government, businesses, or family and friends": "fraud",
    "Lotteries, prizes & sweepstakes": "fraud",
    "Computer & technical support": "fraud",  # tech-support calls are impostor scams
    "Dropped call or no message": "silent",
    "Reducing your debt (credit cards, mortgage, student loans)": "loan",
    "Warranties & protection plans": "insurance",
    "Medical & prescriptions": "health",
    "Vacation & timeshares": "travel",
    "Home improvement & cleaning": "housekeeping",
    "Work from home & other ways to make money": "recruitment",
    "Energy, solar, & utilities": "telemarketing",
    "Home security & alarms": "telemarketing",
    "Charities": "telemarketing",
}


def subject_tag(subject: str) -> str:
    return FTC_SUBJECT_TAGS.get(re.sub(r"\s+", " ", subject).strip(), UNMAPPED_SUBJECT_TAG)


@dataclass
class Summary:
    rows: int = 0
    imported: int = 0  # votes newly counted
    already_imported: int = 0  # the same file imported before
    skipped: Counter = field(default_factory=Counter)  # reason -> rows

    def lines(self) -> list[str]:
        out = [f"rows: {self.rows}", f"imported: {self.imported}", f"already imported: {self.already_imported}",
               f"skipped: {sum(self.skipped.values())}"]
        out += [f"  {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        return out


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_rows(path: str) -> int:
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def _created(value: str) -> float:
    # The files give local wall-clock times without a zone; they are read as UTC.
    return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _votes(store: Store, path: str, summary: Summary, dated_now: bool) -> Iterator[Vote]:
    sha = file_sha256(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "Company_Phone_Number" not in reader.fieldnames:
            raise ValidationFailed(f"{path} is not an FTC Reported Calls file (no Company_Phone_Number column)")
        for position, row in enumerate(reader):
            summary.rows += 1
            raw = (row.get("Company_Phone_Number") or "").strip()
            if not raw:
                summary.skipped["blank number"] += 1
                continue
            try:
                number = numbers.normalize(raw, FTC_REGION)
                at = store.clock() if dated_now else _created(row.get("Created_Date") or "")
            except InvalidNumber as exc:
                summary.skipped[f"invalid number ({exc.details.get('reason', 'invalid')})"] += 1
                continue
            except ValueError:
                summary.skipped["invalid Created_Date"] += 1
                continue
            voter = devices.voter_field(store.secret, f"ftc:{sha}:{position}")
            yield Vote(number=number, tag=subject_tag(row.get("Subject") or ""), voter=voter, at=at)


def import_ftc(store: Store, paths: list[str], dated_now: bool = False,
               progress: Callable[[int], None] | None = None) -> Summary:
    """Import FTC files through the same script as HTTP reports, pipelined."""
    summary = Summary()
    for path in paths:
        batch: list[Vote] = []
        seen_rows = summary.rows
        for vote in _votes(store, path, summary, dated_now):
            batch.append(vote)
            if len(batch) >= PIPELINE_BATCH:
                _flush(store, batch, summary)
                if progress:
                    progress(summary.rows - seen_rows)
                    seen_rows = summary.rows
        _flush(store, batch, summary)
        if progress:
            progress(summary.rows - seen_rows)
    return summary


def _flush(store: Store, batch: list[Vote], summary: Summary) -> None:
    if not batch:
        return
    for outcome in cast_votes(store, batch):
        if outcome.duplicate:
            summary.already_imported += 1
        else:
            summary.imported += 1
    batch.clear()
