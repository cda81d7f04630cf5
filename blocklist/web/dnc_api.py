"""Do-Not-Call over HTTP: phones prove their numbers by SMS, register them with the marketing
calls they refuse and consent to organisations; telemarketers (API keys of scope `scrub`, the
organisation being the key's name) scrub their lists and keep the receipts. Routes are thin:
blocklist/dnc.py does the work.

A scrub is JSON (up to MAX_SCRUB_JSON numbers, one answer) or a text/csv upload of up to
MAX_CSV_LINES lines, one number per line: the upload is spooled to a temporary file while its
lines are counted, the key's daily quota is charged for all of them, and only then are they
scrubbed, streamed back as CSV in batches, so memory stays constant. Its receipt id is chosen
before the stream starts (header X-Receipt-Id); the receipt is written when the stream ends.
"""
from __future__ import annotations

import csv
import hashlib
import io
import secrets
import tempfile
from itertools import islice
from typing import IO, Iterable, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from sync.signing import iso

from .. import dnc, dnc_stats, sms
from ..errors import QuotaExceeded, ValidationFailed
from ..store import Store
from . import responses as r
from .api import NUMBER, _number, _store
from .auth import ADMIN_KEY, DEVICE, SCRUB_KEY
from .body import json_body
from .ratelimit import DNC, SCRUB, VERIFICATIONS
from .routes import Doc, route
from .schemas import (ConsentRequestSchema, NumberQuerySchema, PreferencesUpdateSchema, RegistrationRequestSchema,
                      ScrubQuerySchema, ScrubRequestSchema, StatsQuerySchema, VerificationRequestSchema)

bp = Blueprint("dnc", __name__)

SMS = "callmark.sms"  # app.extensions: the app's one SMS sender (blocklist.sms.sender)
MAX_CSV_LINES = 1_000_000  # numbers per text/csv scrub
MAX_CSV_LINE = 256  # bytes of one line: a line holds one number (and no number is nearly this long)
MAX_CSV_BODY = 64 * 1024 * 1024  # bytes of a text/csv scrub: 1,000,000 numbers take about 15 MB; past it, 413
MAX_JSON_BODY = 2 * 1024 * 1024  # bytes of a JSON scrub: 10,000 numbers of up to 100 characters
SPOOL_CHUNK = 256 * 1024  # bytes read at a time from an upload
SPOOL_IN_MEMORY = 1024 * 1024  # an upload up to this size is spooled in memory, a larger one on disk
STREAM_BATCH = 5000  # rows per piece of the streamed answer
CSV_HEADER = "number,callable,reason\n"
CSV_CHARSETS = ("utf-8", "utf8", "us-ascii", "ascii")  # what a text/csv scrub may say it is
CONSENT_ID = {"in": "path", "name": "consent_id", "required": True, "schema": {"type": "string"}}

_number_query = NumberQuerySchema()
_scrub_query = ScrubQuerySchema()
_scrub_request = ScrubRequestSchema()
_consent_request = ConsentRequestSchema()
_preferences_update = PreferencesUpdateSchema()
_registration_request = RegistrationRequestSchema()
_verification_request = VerificationRequestSchema()


@bp.record_once
def _sms_sender(state) -> None:
    # One sender per app, chosen by the settings: the gateway, the development outbox or none.
    state.app.extensions[SMS] = sms.sender(state.app.config["CALLMARK"])


# --- the phone user ------------------------------------------------------------------------

@route(bp, "POST", "/v1/dnc/verifications", auth=DEVICE, limits=VERIFICATIONS,
       doc=Doc("Send a 6-digit code by SMS to prove a number (10 minutes, 5 attempts); limited per device, "
               "network, destination number and destination country", 202, r.VerificationSchema,
               request=VerificationRequestSchema, errors=(400, 413, 429), tags=("do-not-call",)))
def start_verification():
    body = _verification_request.load(json_body())
    number = _number(body["number"], body.get("region"))
    answer = dnc.start_verification(_store(), g.device, number, current_app.extensions[SMS].send)
    return jsonify(answer), 202


@route(bp, "POST", "/v1/dnc/registrations", auth=DEVICE, limits=DNC,
       doc=Doc("Register the verified number with its preferences (a number registered by another device moves "
               "to this one)", 201, r.RegistrationSchema, request=RegistrationRequestSchema,
               errors=(400, 413, 429), tags=("do-not-call",)))
def register():
    body = _registration_request.load(json_body())
    answer = dnc.register(_store(), g.device, body["verification_id"], body["code"], body["preferences"])
    return jsonify(answer), 201


@route(bp, "GET", "/v1/dnc/registrations/me", auth=DEVICE, limits=DNC,
       doc=Doc("This device's registrations, with when each takes effect and expires", 200, r.RegistrationsSchema,
               errors=(429,), tags=("do-not-call",)))
def my_registrations():
    return jsonify(registrations=dnc.registrations_of(_store(), g.device_id))


@route(bp, "PUT", "/v1/dnc/registrations/<number>", auth=DEVICE, limits=DNC,
       doc=Doc("Change a registration's preferences (only the device that registered it)", 200,
               r.RegistrationSchema, request=PreferencesUpdateSchema, query=NumberQuerySchema,
               errors=(400, 404, 413, 429), tags=("do-not-call",), parameters=(NUMBER,)))
def update_registration(number: str):
    body = _preferences_update.load(json_body())
    number = _number(number, _number_query.load(request.args).get("region"))
    return jsonify(dnc.update(_store(), g.device_id, number, body["preferences"]))


@route(bp, "DELETE", "/v1/dnc/registrations/<number>", auth=DEVICE, limits=DNC,
       doc=Doc("Remove a registration (only the device that registered it)", 200, r.RegistrationRemovedSchema,
               query=NumberQuerySchema, errors=(400, 404, 429), tags=("do-not-call",), parameters=(NUMBER,)))
def remove_registration(number: str):
    number = _number(number, _number_query.load(request.args).get("region"))
    dnc.remove(_store(), g.device_id, number)
    return jsonify(number=number, removed=True)


@route(bp, "POST", "/v1/dnc/consents", auth=DEVICE, limits=DNC,
       doc=Doc("Consent to calls from one organisation (a scrub key's name) about some categories, for a number "
               "this device registered", 201, r.ConsentSchema, request=ConsentRequestSchema,
               errors=(400, 404, 413, 429), tags=("do-not-call",)))
def add_consent():
    body = _consent_request.load(json_body())
    number = _number(body["number"], body.get("region"))
    return jsonify(dnc.add_consent(_store(), g.device_id, number, body["organization"], body["categories"])), 201


@route(bp, "DELETE", "/v1/dnc/consents/<consent_id>", auth=DEVICE, limits=DNC,
       doc=Doc("Withdraw a consent this device gave", 200, r.ConsentWithdrawnSchema, errors=(404, 429),
               tags=("do-not-call",), parameters=(CONSENT_ID,)))
def withdraw_consent(consent_id: str):
    dnc.withdraw_consent(_store(), g.device_id, consent_id)
    return jsonify(consent_id=consent_id, withdrawn=True)


# --- the telemarketer ----------------------------------------------------------------------

class _Tally:
    """What a receipt says of the results so far: how many, how many callable, and the SHA-256 of
    the numbers as shown (E.164, or the input as given when invalid) joined by newlines."""

    def __init__(self) -> None:
        self.count = self.callable = 0
        self.digest = hashlib.sha256()

    def add(self, rows: list[tuple[str, bool, str]]) -> None:
        if rows:
            self.digest.update((("\n" if self.count else "") + "\n".join(row[0] for row in rows)).encode())
        self.count += len(rows)
        self.callable += sum(1 for row in rows if row[1])

    def receipt(self, store: Store, organization: str, category: str, at: float, **receipt_id: str) -> dict:
        """Write the receipt; `receipt_id=` names it when the id went out first (a streamed answer)."""
        return dnc.write_receipt(store, organization, category, at, self.count, self.callable,
                                 self.digest.hexdigest(), **receipt_id)


def _charge(store: Store, organization: str, count: int) -> None:
    """Spend `count` of the key's daily quota before anything is scrubbed; 429 when it has no room."""
    if not dnc.charge_quota(store, organization, count):
        quota, now = store.config.scrub_daily_numbers, store.clock()
        raise QuotaExceeded(f"{count:,} numbers do not fit in what is left of this key's {quota:,} for today "
                            "(CALLMARK_SCRUB_DAILY_NUMBERS, per UTC day); nothing was scrubbed",
                            {"quota": quota, "requested": count, "resets_at": iso((now // 86400 + 1) * 86400)})


def _spool(stream: IO[bytes], into: IO[bytes]) -> int:
    """Copy the upload into `into`, counting its lines; refuse it (nothing scrubbed yet) past
    MAX_CSV_LINES lines or with a line longer than MAX_CSV_LINE bytes."""
    lines, run = 0, 0  # run: bytes of the line being read, before this chunk
    while chunk := stream.read(SPOOL_CHUNK):
        into.write(chunk)
        parts = chunk.split(b"\n")  # the end of the line being read, the lines within, the start of the next
        if run + len(parts[0]) > MAX_CSV_LINE or max(map(len, parts)) > MAX_CSV_LINE:
            where = lines + 1 + next(i for i, part in enumerate(parts) if len(part) + (run if i == 0 else 0)
                                     > MAX_CSV_LINE)
            raise ValidationFailed(f"line {where} is longer than {MAX_CSV_LINE} bytes: send one number per line",
                                   {"line": where})
        run = run + len(chunk) if len(parts) == 1 else len(parts[-1])
        lines += len(parts) - 1
        if lines + (run > 0) > MAX_CSV_LINES:
            raise RequestEntityTooLarge(f"a text/csv scrub holds at most {MAX_CSV_LINES:,} lines")
    return lines + (run > 0)


def _lines(spool: IO[bytes]) -> Iterator[str]:
    """The spooled lines as text, without their line ends (\\n or \\r\\n); bytes that are no UTF-8
    read as U+FFFD, and such a line answers invalid_number like any other."""
    spool.seek(0)
    for line in spool:
        yield line.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    rows = iter(rows)
    while batch := list(islice(rows, size)):
        yield batch


def _csv_answer(store: Store, organization: str, category: str, call_at: float, at: float, spool: IO[bytes],
                receipt_id: str) -> Iterator[bytes]:
    """The scrub's CSV, a batch at a time; the receipt is written once the last row is out."""
    try:
        yield CSV_HEADER.encode()
        tally = _Tally()
        for batch in _batches(dnc.scrub(store, organization, category, call_at, _lines(spool)), STREAM_BATCH):
            tally.add(batch)
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(
                (number, "true" if ok else "false", reason) for number, ok, reason in batch)
            yield out.getvalue().encode()
        tally.receipt(store, organization, category, at, receipt_id=receipt_id)
    finally:
        spool.close()


def _scrub_csv(store: Store, organization: str) -> Response:
    query = _scrub_query.load(request.args)
    if "category" not in query:
        raise ValidationError({"category": ["Missing data for required field."]})
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in CSV_CHARSETS:
        raise UnsupportedMediaType(f"a text/csv scrub is read as UTF-8, not {charset}: send it as UTF-8 (or ASCII)")
    request.max_content_length = MAX_CSV_BODY  # before the body is read: past it, 413
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        count = _spool(request.stream, spool)
        if count == 0:
            raise ValidationFailed("the upload holds no numbers: send one number per line")
        _charge(store, organization, count)
    except BaseException:
        spool.close()
        raise
    receipt_id = secrets.token_hex(8)  # the receipts' own form (dnc.write_receipt)
    now = store.clock()
    response = Response(_csv_answer(store, organization, query["category"], query.get("call_at", now), now,
                                    spool, receipt_id), mimetype="text/csv")
    response.headers["X-Receipt-Id"] = receipt_id
    return response


@route(bp, "POST", "/v1/dnc/scrub", auth=SCRUB_KEY, limits=SCRUB,
       doc=Doc("Scrub numbers against the registry for one marketing category: JSON (up to 10,000 numbers), or "
               "text/csv (one number per line, up to 1,000,000; category and call_at in the query), answered as "
               "CSV `number,callable,reason` streamed back, with the receipt id in X-Receipt-Id. The key's "
               "daily quota is charged for every number first; past it, 429 and nothing is scrubbed", 200,
               content={"application/json": {"schema": r.ScrubResultSchema},
                        "text/csv": {"schema": {"type": "string"}}},
               request=ScrubRequestSchema, query=ScrubQuerySchema, errors=(400, 413, 429), tags=("do-not-call",),
               request_content={"text/csv": {"schema": {
                   "type": "string", "pattern": r"^\S[^\n]{0,255}(\n[^\n]{0,256})*$",
                   "description": "one number per line: up to 1,000,000 lines of up to 256 bytes, the first not blank"}}}))
def scrub():
    store, organization = _store(), g.api_key.name
    if request.mimetype == "text/csv":
        return _scrub_csv(store, organization)
    _scrub_query.load(request.args)  # documented for text/csv; a JSON body says its own
    request.max_content_length = MAX_JSON_BODY
    body = _scrub_request.load(json_body())
    _charge(store, organization, len(body["numbers"]))
    now, tally = store.clock(), _Tally()
    rows = list(dnc.scrub(store, organization, body["category"], body.get("call_at", now), body["numbers"]))
    tally.add(rows)
    receipt = tally.receipt(store, organization, body["category"], now)
    return jsonify(results=[{"number": number, "callable": ok, "reason": reason} for number, ok, reason in rows],
                   receipt_id=receipt["receipt_id"])


@route(bp, "GET", "/v1/dnc/receipts", auth=SCRUB_KEY, limits=SCRUB,
       doc=Doc("This key's scrub receipts, newest first", 200, r.ReceiptsSchema, errors=(429,),
               tags=("do-not-call",)))
def receipts():
    return jsonify(receipts=dnc.receipts(_store(), g.api_key.name))


# --- the operator ------------------------------------------------------------------------

@route(bp, "GET", "/v1/dnc/stats", auth=ADMIN_KEY,
       doc=Doc("Do-Not-Call figures for a period: registrations in total, per day and by region, the share "
               "refusing each marketing category and with accept windows, scrubs per day, numbers scrubbed and "
               "the callable share, violations per category", 200, r.DncStatsSchema, query=StatsQuerySchema,
               errors=(400,), tags=("do-not-call",)))
def stats():
    query = StatsQuerySchema().load(request.args)
    return jsonify(dnc_stats.summary(_store(), query.get("from"), query.get("to")))
