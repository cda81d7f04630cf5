"""Import the FTC Do-Not-Call complaint files as reports and complaints.

Two formats, told apart by their header:

- a "Reported Calls" daily file (`Company_Phone_Number,Created_Date,...,Subject,...`): one
  complaint per row, dated by Created_Date and tagged by Subject;
- the 90-day numbers file (one column, `pattern`): one complaint per row that gives only the
  number, tagged UNKNOWN_SUBJECT_TAG and dated by a given day or the day in the file's name.

Each valid row is one complaint from its own anonymous reporter, whose id is derived from the
file's SHA-256 and the row's position: identical rows stay separate complaints, and a complaint
is one vote however often its file is imported. Importing a file again with the same dating
finds every vote already cast. With another dating the votes already cast are re-dated: the
reporter's vote is withdrawn and cast again at the new time, so it still counts once.

Each row is also filed as a complaint (blocklist/complaints.py `file_imported`), routed by the
routing table: Subject gives the tag, the dating its receipt, Violation_Date its call time,
Consumer_Area_Code (else Consumer_State) the reporter's region. A row received longer ago than
CALLMARK_COMPLAINT_RETENTION_DAYS counts in the public figures and is not kept.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Callable, Iterator

from . import complaints, devices, numbers, reputation, tags
from .complaints import Imported
from .errors import InvalidNumber, ValidationFailed
from .reputation import Vote, cast_votes
from .store import Store

FTC_REGION = "US"  # the files hold North American numbers in national format
PIPELINE_BATCH = 500  # votes per round trip
UNMAPPED_SUBJECT_TAG = "harassment"  # every complaint is an unwanted call, so always spam
# The 90-day file names no subject: its rows get the tag of "No Subject Provided", the
# taxonomy's tag for an unwanted call of unknown kind (telemarketing would claim it advertised).
UNKNOWN_SUBJECT_TAG = "harassment"

REPORTED_CALLS = "Reported Calls file"
NINETY_DAY = "90-day numbers file"
REPORTED_CALLS_COLUMNS = ("Company_Phone_Number", "Created_Date", "Subject")  # the columns it must have
COMPLAINT_COLUMNS = ("Violation_Date", "Consumer_State", "Consumer_Area_Code")  # read for the complaint when there
NINETY_DAY_HEADER = ["pattern"]
NAME_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})\.csv$", re.IGNORECASE)  # ...-2025-12-11.csv
SHOWN_HEADER_CHARS = 60  # of an unknown header, in its error message

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
    files: int = 0  # distinct files (by content) read
    rows: int = 0
    imported: int = 0  # votes newly counted
    redated: int = 0  # votes of an earlier import cast again with this import's dating
    already_imported: int = 0  # votes of an earlier import with the same dating
    numbers: set[str] = field(default_factory=set)  # distinct numbers of the valid rows
    complaints: int = 0  # rows newly filed as complaints
    past_retention: int = 0  # rows received longer ago than the complaint retention: counted, not kept
    skipped: Counter = field(default_factory=Counter)  # reason -> rows

    def lines(self) -> list[str]:
        out = [f"files: {self.files}", f"rows: {self.rows}", f"imported: {self.imported}",
               f"re-dated: {self.redated}", f"already imported: {self.already_imported}",
               f"numbers: {len(self.numbers)}", f"complaints filed: {self.complaints}",
               f"past the complaint retention (counted, not kept): {self.past_retention}",
               f"skipped: {sum(self.skipped.values())}"]
        out += [f"  {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        return out


@dataclass(frozen=True)
class Source:
    """A file read whole and checked: nothing is written before every file passed."""

    path: str
    format: str  # REPORTED_CALLS or NINETY_DAY
    sha256: str
    text: str
    rows: int
    at: float | None  # unix time every complaint is dated at; None: by Created_Date
    dating: str  # how, for a person: "by Created_Date", "now", "on 2025-12-11"


def read_files(store: Store, paths: list[str], dated_now: bool = False, day: date | None = None) -> list[Source]:
    """Read and check every file; raise ValidationFailed (one line) for the first that
    cannot be imported. A content given twice is read once."""
    now = store.clock()
    sources: dict[str, Source] = {}
    for path in paths:
        source = read_file(path, now, dated_now, day)
        sources.setdefault(source.sha256, source)
    return list(sources.values())


def read_file(path: str, now: float, dated_now: bool = False, day: date | None = None) -> Source:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ValidationFailed(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValidationFailed(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise ValidationFailed(f"{path}: permission denied") from None
    except OSError as exc:
        raise ValidationFailed(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not data.strip():
        raise ValidationFailed(f"{path}: the file is empty")
    if b"\0" in data:
        raise ValidationFailed(f"{path}: a binary file, not CSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationFailed(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})") from None
    records = _records(text)
    try:
        header = [name.strip() for name in next(records)]
        rows = sum(1 for _ in records)
    except csv.Error as exc:
        raise ValidationFailed(f"{path}: not a CSV file ({exc})") from None
    if header == NINETY_DAY_HEADER:
        kind = NINETY_DAY
    elif all(column in header for column in REPORTED_CALLS_COLUMNS):
        kind = REPORTED_CALLS
    else:
        shown = ",".join(header)
        shown = shown if len(shown) <= SHOWN_HEADER_CHARS else shown[:SHOWN_HEADER_CHARS] + "..."
        raise ValidationFailed(f"{path}: unknown header {shown!r}: expected an FTC Reported Calls header "
                               f"(with {', '.join(REPORTED_CALLS_COLUMNS)}) or the 90-day file's 'pattern'")
    at, dating = _dating(path, kind, now, dated_now, day)
    return Source(path, kind, hashlib.sha256(data).hexdigest(), text, rows, at, dating)


def _dating(path: str, kind: str, now: float, dated_now: bool, day: date | None) -> tuple[float | None, str]:
    if dated_now:
        return now, "now"
    if day is None and kind == REPORTED_CALLS:
        return None, "by Created_Date"
    if day is None:
        match = NAME_DAY.search(path)
        try:
            day = date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day = None
        if day is None:
            raise ValidationFailed(f"{path}: a 90-day file has no dates and its name holds no day "
                                   f"(...-YYYY-MM-DD.csv): give one with --date YYYY-MM-DD or use --dated-now")
    at = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    if at > now:
        raise ValidationFailed(f"{path}: cannot be dated {day.isoformat()}, a day that has not begun")
    return at, f"on {day.isoformat()}"


def _records(text: str) -> Iterator[list[str]]:
    """The CSV records of a text, blank lines left out (as csv.DictReader does)."""
    return (record for record in csv.reader(io.StringIO(text, newline="")) if record)


def _created(value: str) -> float:
    # The files give local wall-clock times without a zone; they are read as UTC.
    return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _time_or_none(value: str) -> float | None:
    try:
        return _created(value) if value.strip() else None
    except ValueError:
        return None


def _votes(store: Store, source: Source, summary: Summary) -> Iterator[tuple[Vote, Imported]]:
    """Each valid row's vote and the complaint it files."""
    records = _records(source.text)
    header = [name.strip() for name in next(records)]
    column = {name: header.index(name) for name in (*REPORTED_CALLS_COLUMNS, *COMPLAINT_COLUMNS) if name in header}

    def cell(record: list[str], name: str) -> str:
        i = column.get(name, len(record))
        return record[i] if i < len(record) else ""

    for position, record in enumerate(records):
        summary.rows += 1
        if source.format == NINETY_DAY:
            raw, tag = record[0], UNKNOWN_SUBJECT_TAG
            if any(value.strip() for value in record[1:]):
                summary.skipped["more than one column"] += 1
                continue
        else:
            raw, tag = cell(record, "Company_Phone_Number"), subject_tag(cell(record, "Subject"))
        if not raw.strip():
            summary.skipped["blank number"] += 1
            continue
        try:
            number = numbers.normalize(raw.strip(), FTC_REGION)
            at = source.at if source.at is not None else _created(cell(record, "Created_Date"))
        except InvalidNumber as exc:
            summary.skipped[f"invalid number ({exc.details.get('reason', 'invalid')})"] += 1
            continue
        except ValueError:
            summary.skipped["invalid Created_Date"] += 1
            continue
        summary.numbers.add(number)
        reporter = f"ftc:{source.sha256}:{position}"
        region = cell(record, "Consumer_Area_Code").strip() or cell(record, "Consumer_State").strip()
        yield (Vote(number=number, tag=tag, voter=devices.voter_field(store.secret, reporter), at=at),
               Imported(reporter, number, tag, at, _time_or_none(cell(record, "Violation_Date")), region[:32]))


def import_ftc(store: Store, paths: list[str], dated_now: bool = False, day: date | None = None,
               progress: Callable[[int], None] | None = None) -> Summary:
    """Check every file, then import them through the same script as HTTP reports, pipelined."""
    return import_sources(store, read_files(store, paths, dated_now, day), progress)


def import_sources(store: Store, sources: list[Source], progress: Callable[[int], None] | None = None) -> Summary:
    """Import files read by `read_files`; `progress(rows)` is told of the rows done."""
    summary = Summary(files=len(sources))
    for source in sources:
        batch: list[tuple[Vote, Imported]] = []
        reported = summary.rows
        for pair in _votes(store, source, summary):
            batch.append(pair)
            if len(batch) >= PIPELINE_BATCH:
                _flush(store, batch, summary)
                if progress:
                    progress(summary.rows - reported)
                    reported = summary.rows
        _flush(store, batch, summary)
        if progress:
            progress(summary.rows - reported)
    return summary


def _flush(store: Store, pairs: list[tuple[Vote, Imported]], summary: Summary) -> None:
    """Cast a batch: new votes, and earlier votes of the same reporters at another hour moved
    to this import's time (counted once: a re-dated complaint moves no statistic); then file
    the rows as complaints (each file's row once, however often it is imported)."""
    if not pairs:
        return
    batch = [vote for vote, _ in pairs]
    stored = store.pipelined(lambda pipe: [pipe.hget(store.keys.number(v.number), v.voter) for v in batch])
    cast: list[Vote] = []
    for vote, packed in zip(batch, stored):
        if packed is None:
            cast.append(vote)
        elif (reputation.vote_hour(int(packed)) == int(vote.at) // reputation.HOUR
              and reputation.vote_tag(int(packed)) == tags.INDEX[vote.tag]):
            summary.already_imported += 1
        else:
            cast.append(replace(vote, redate=True))
    for vote, outcome in zip(cast, cast_votes(store, cast)):
        if outcome.outcome == "redated":
            summary.redated += 1
        elif outcome.duplicate:
            summary.already_imported += 1
        else:
            summary.imported += 1
    filed = complaints.file_imported(store, [row for _, row in pairs])
    summary.complaints += filed["filed"]
    summary.past_retention += filed["past_retention"]
    pairs.clear()
