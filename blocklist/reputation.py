"""Reputation: votes in, verdicts out. All the arithmetic runs in the Lua scripts.

Per number, one Redis hash (its layout and the vote packing: docs/STORAGE.md, "One number,
one hash"): per-tag reporter counts and decayed scores, first/last report, the published
state, and one field per voter. A report is one call of lua/report.lua, which also appends
to the bucket's change stream when the verdict or label changes and keeps the decay
schedule that lets `sweep` find numbers whose block ends through time alone.

The constants below that the scripts use too are defined here only: `SCRIPT_CONSTANTS`
hands them to the scripts as a header of `local NAME = value` lines (blocklist/store.py).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from sync.signing import iso as iso_unix  # RFC 3339 UTC to the second: every time the API shows

from . import lists, tags
from .config import Config
from .keyed import VOTER_FIELD_CHARS
from .store import REPORTER_CREDIT, STATS_DAYS, TOP_MIN_REPORTERS, Store, credit

VERDICTS = ("unknown", "allow", "warn", "block")  # indexed by the scripts' verdict codes
SWEEP_BATCH = 500  # numbers re-evaluated per round trip by the sweep
DETECTOR_VOTER = "~ringonc"  # the ring-once detector's voter field; no device's can look like it
DETECTOR_TAG = "ring_once"
FULL_WEIGHT = 100  # voter weights are whole percents
# A vote's rank: how much it counts toward a block (docs/REPUTATION.md).
FRESH, AGED, STANDING, RETIRED = 0, 1, 2, 3
RETIRE_AFTER_HALF_LIVES = 4  # a vote this old (1/16 of a fresh one) no longer counts
RETIRE_SLACK_HOURS = 24  # votes within a day of that age retire together: one scan a day at most
REBASE_HALF_LIVES = 8  # a number's decay epoch moves forward when a vote is this much newer
DETAILS_RETAG_HOURS = 24  # a retag keeps report details only this long after the vote it replaces
HOUR = 3600  # seconds: a stored vote keeps its hour (since 1970), a number's epoch is an hour
EVIDENCE_UNIT = 10**6  # the s<i> fields count micro-units: a millionth of a fresh full-weight vote
# A stored vote: ((network * WEIGHT_SLOTS + FULL_WEIGHT - weight) * RANK_SLOTS + rank) * LOW_BITS
# + hour * TAG_SLOTS + tag; below 2^53, so exact in a Lua number (docs/STORAGE.md).
LOW_BITS = 2**28  # below: hour * TAG_SLOTS + tag (the hour lasts to the year 2926)
TAG_SLOTS = 32  # tag indexes a vote has room for
RANK_SLOTS = 4  # FRESH, AGED, STANDING, RETIRED
WEIGHT_SLOTS = 128  # FULL_WEIGHT - weight, 0 to 100
STATE_LABELS = 64  # the v field: verdict code * STATE_LABELS + label index + 1 (0: unknown, no label)
OVERRIDE_FLAGS = {"allow": "1", "block": "2"}  # the o field: an operator's override
_OVERRIDE_NAMES = {flag: name for name, flag in OVERRIDE_FLAGS.items()}

# What the scripts get in their header besides the settings (blocklist/store.py), by the
# names they use; each is the Python constant above, so the two cannot drift apart.
SCRIPT_CONSTANTS: dict[str, int | str] = {
    **{f"VERDICT_{name.upper()}": code for code, name in enumerate(VERDICTS)},
    "DETECTOR_VOTER": DETECTOR_VOTER,
    "FULL_WEIGHT": FULL_WEIGHT,
    "FRESH": FRESH, "AGED": AGED, "STANDING": STANDING, "RETIRED": RETIRED,
    "RETIRE_SLACK_HOURS": RETIRE_SLACK_HOURS,
    "DETAILS_RETAG_HOURS": DETAILS_RETAG_HOURS,
    "HOUR": HOUR,
    "EVIDENCE_UNIT": EVIDENCE_UNIT,
    "LOW_BITS": LOW_BITS,
    "TAG_SLOTS": TAG_SLOTS,
    "RANK_SLOTS": RANK_SLOTS,
    "WEIGHT_SLOTS": WEIGHT_SLOTS,
    "STATE_LABELS": STATE_LABELS,
    "OVERRIDE_ALLOW": OVERRIDE_FLAGS["allow"],
    "OVERRIDE_BLOCK": OVERRIDE_FLAGS["block"],
    # a longer field is a voter's Do-Not-Call violation flag, g<voter> (docs/STORAGE.md)
    "VOTER_CHARS": VOTER_FIELD_CHARS,
}


def script_constants(config: Config) -> dict[str, int | float | str]:
    """What the Lua scripts know by name: the deployment's settings and the constants the
    Python code shares with them (SCRIPT_CONSTANTS). Fixed per deployment, so one script SHA
    per set of settings."""
    half_life_hours = config.half_life_days * 24
    return {
        "HALF_LIFE": config.half_life_days * 86400,
        "BLOCK_MIN": config.block_min_reporters,
        "BLOCK_SCORE": config.block_min_reporters * config.block_score_fraction,
        "KINDS": tags.KINDS,
        "NTAGS": len(tags.TAXONOMY),
        "BURST_MIN": config.burst_min_tags,
        "BURST_WINDOW": config.burst_window_minutes,
        "TALK_SHARE": config.talker_share,
        "TALK_CAP": max(config.talker_cap, config.block_min_reporters),
        "STATS_DAYS": STATS_DAYS,
        "TOP_MIN": TOP_MIN_REPORTERS,
        "REPORTER_CREDIT": REPORTER_CREDIT,
        "CREDIT_FRESH": credit(config.block_min_reporters, config.fresh_reporters_to_block),
        "CREDIT_AGED": credit(config.block_min_reporters, config.aged_reporters_to_block),
        "LIVE_HOURS": math.ceil(RETIRE_AFTER_HALF_LIVES * half_life_hours),
        "REBASE_HOURS": math.ceil(REBASE_HALF_LIVES * half_life_hours),
        **SCRIPT_CONSTANTS,
    }


@dataclass(frozen=True)
class Vote:
    """One reporter's tag for one number, ready for the report script."""

    number: str  # E.164
    tag: str
    voter: str  # keyed voter field (devices.voter_field)
    at: float  # unix time of the report
    report_id: str | None = None
    details: dict[str, Any] | None = None  # company, note, call: kept for regulators
    weight: int = FULL_WEIGHT  # the voter's trust, percent (blocklist/trust.py)
    network: int = 0  # 16-bit keyed hash of the voter's network; 0 = not recorded
    fresh: bool = False  # a fresh device: its spam tags feed the burst guard
    # FRESH, AGED or STANDING; votes built by operators' tools (imports) count in full
    rank: int = STANDING
    redate: bool = False  # move the voter's vote to `at` even when its tag is the same (imports)
    violation: bool = False  # the call broke the called number's Do-Not-Call registration (violations.py)


@dataclass(frozen=True)
class Outcome:
    outcome: str  # new | retag | redated | duplicate | replay | withdrawn | absent | evaluated | erased
    verdict: str
    label: str | None
    changed: bool  # the verdict or label changed and went to the change log
    new_violation: bool = False  # the vote became a counted Do-Not-Call violation (for the statistics)

    @property
    def duplicate(self) -> bool:
        return self.outcome in ("duplicate", "replay")


def published_state(v: int) -> tuple[str, str | None]:
    """Verdict and label from a number's `v` field (what its last change-log entry says)."""
    return VERDICTS[v // STATE_LABELS], _label(v % STATE_LABELS - 1)


def vote_tag(vote: int) -> int:
    """The tag index a stored vote carries (the packing: LOW_BITS above)."""
    return vote % LOW_BITS % TAG_SLOTS


def vote_hour(vote: int) -> int:
    """The hour (since 1970) a stored vote was cast in."""
    return vote % LOW_BITS // TAG_SLOTS


def vote_weight(vote: int) -> int:
    """The weight (percent) a stored vote was cast with."""
    return FULL_WEIGHT - vote // LOW_BITS // RANK_SLOTS % WEIGHT_SLOTS


def vote_network(vote: int) -> int:
    """The 16-bit network hash a stored vote was cast from (0: not recorded)."""
    return vote // LOW_BITS // (RANK_SLOTS * WEIGHT_SLOTS)


def vote_class(vote: int) -> int:
    """FRESH, AGED, STANDING or RETIRED."""
    return vote // LOW_BITS % RANK_SLOTS


def _outcome(reply: list) -> Outcome:
    outcome, verdict, label, changed, violation = reply
    return Outcome(outcome, VERDICTS[int(verdict)], _label(int(label)), bool(int(changed)), bool(int(violation)))


def _label(index: int) -> str | None:
    return tags.TAXONOMY[index].code if index >= 0 else None


def _min_stream_id(store: Store) -> str:
    """Oldest change-log id to keep: entries older than the retention are trimmed."""
    return str(int((time.time() - store.config.change_retention_days * 86400) * 1000))


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds per vote to build
class ReportArgs:
    """The ARGV of lua/report.lua: its fields in order are ARGV[1], ARGV[2], ... (the script's
    header names them alike). Every mode sends the first six; `withdraw` adds the voter,
    `reweigh` the voter, weight and rank; `vote` and `redate` send everything; `eval` (the
    sweep) nothing more. A field a mode does not send keeps its default. The flags (`fresh`,
    `violation`) come last and go as 0 or 1."""

    mode: str  # vote | redate | withdraw | reweigh | eval
    number: str  # E.164
    digits: str  # the number without its +: its prefix-index member
    now: int  # unix seconds
    at: int  # the vote's time, unix seconds (imports are dated in the past); else now
    min_id: str  # oldest change-stream id to keep (retention)
    voter: str = ""  # keyed voter field (devices.voter_field)
    tag: int = 0  # tag index (tags.INDEX)
    rid_ttl: int = 0  # seconds the report_id record is kept; 0 without a report_id
    details: str = ""  # JSON of the report's details, kept for regulators; "" for none
    weight: int = FULL_WEIGHT  # the voter's trust, percent
    network: int = 0  # 16-bit keyed hash of the voter's network; 0 = not recorded
    rank: int = STANDING  # FRESH, AGED or STANDING
    fresh: bool = False  # a fresh device: its spam tags feed the burst guard
    violation: bool = False  # the vote is a Do-Not-Call violation: flag it (g<voter>, counted in k)

    @classmethod
    def of(cls, store: Store, mode: str, number: str, at: float, **sent: Any) -> "ReportArgs":
        """The arguments of `mode` for `number`, at `at`: now and the retention from `store`."""
        return cls(mode, number, number.lstrip("+"), int(store.clock()), int(at), _min_stream_id(store), **sent)

    def argv(self) -> list:
        *sent, fresh, violation = _ARGV(self)  # the flags, the last fields: Lua reads 0 or 1
        return [*sent, int(fresh), int(violation)]


_ARGV = attrgetter(*(f.name for f in fields(ReportArgs)))  # the fields in ARGV order, read at once


def _report(store: Store, args: ReportArgs, report_id: str | None = None, pipe=None):
    """Run report.lua with `args`, or queue it on `pipe` (see Store.pipelined)."""
    keys = store.keys
    number, voter = args.number, args.voter
    bucket = keys.bucket_of(number)
    rid_key = keys.report_id(number, voter, report_id) if report_id else keys.number(number)
    tombstone = keys.erased_voter(bucket, voter) if voter else keys.number(number)
    script_keys = [keys.number(number), keys.changes(bucket), keys.decay_schedule(bucket), rid_key,
                   keys.details(bucket), keys.prefix_index(number), keys.held(bucket), keys.talkers(number),
                   keys.daily_stats(bucket, args.at // 86400), keys.most_reported(bucket), tombstone]
    if pipe is None:
        return store.report_script(keys=script_keys, args=args.argv())
    store.evalsha(pipe, store.report_script, script_keys, args.argv())


def cast_votes(store: Store, votes: list[Vote], before=None) -> list[Outcome]:
    """Apply votes in one pipelined round trip; each one is atomic on its own.

    `before(pipe)` may queue commands that run first; only the votes' replies are returned.
    """
    def fill(pipe) -> None:
        if before is not None:
            before(pipe)
        for vote in votes:
            _queue_vote(store, vote, pipe)

    return [_outcome(reply) for reply in store.pipelined(fill)[-len(votes):]] if votes else []


def _queue_vote(store: Store, vote: Vote, pipe) -> None:
    details = json.dumps(vote.details, separators=(",", ":"), ensure_ascii=False) if vote.details else ""
    args = ReportArgs.of(store, "redate" if vote.redate else "vote", vote.number, vote.at, voter=vote.voter,
                         tag=tags.INDEX[vote.tag],
                         rid_ttl=store.config.idempotency_hours * HOUR if vote.report_id else 0,
                         details=details, weight=vote.weight, network=vote.network, rank=vote.rank,
                         fresh=vote.fresh, violation=vote.violation)
    _report(store, args, vote.report_id, pipe)


def reweigh_votes(store: Store, numbers: list[str], voter: str, weight: int, rank: int = STANDING) -> int:
    """Give a voter's votes on these numbers a new weight and class (retired votes stay
    retired), pipelined; return how many changed."""
    now = store.clock()
    replies = store.pipelined(lambda pipe: [
        _report(store, ReportArgs.of(store, "reweigh", n, now, voter=voter, weight=weight, rank=rank), pipe=pipe)
        for n in numbers])
    return sum(1 for reply in replies if reply[0] == "reweighed")


def withdraw_vote(store: Store, number: str, voter: str) -> Outcome:
    """Remove a voter's vote on a number, if it has one."""
    return _outcome(_report(store, ReportArgs.of(store, "withdraw", number, store.clock(), voter=voter)))


def withdraw_votes(store: Store, numbers: list[str], voter: str) -> int:
    """Remove a voter's votes on many numbers, pipelined; return how many existed."""
    now = store.clock()
    replies = store.pipelined(lambda pipe: [
        _report(store, ReportArgs.of(store, "withdraw", n, now, voter=voter), pipe=pipe) for n in numbers])
    return sum(1 for reply in replies if _outcome(reply).outcome == "withdrawn")


def _iso(unix: str | None) -> str | None:
    return None if unix is None else iso_unix(int(unix))


def lookup(store: Store, number: str) -> dict[str, Any]:
    """The reputation of a number as of now."""
    return lookup_many(store, [number])[0]


def lookup_many(store: Store, numbers: list[str]) -> list[dict[str, Any]]:
    """Reputations of many numbers in one pipelined round trip."""
    now = store.clock()
    replies = store.pipelined(lambda pipe: [queue_read(store, pipe, n, now) for n in numbers])
    return [from_reply(number, reply) for number, reply in zip(numbers, replies)]


def queue_read(store: Store, pipe, number: str, now: float) -> None:
    """Queue the read of a number's reputation on a `store.pipelined` pipeline; its reply
    goes to `from_reply`. Lets a caller share the round trip with other commands."""
    store.evalsha(pipe, store.read_script, [store.keys.number(number), store.keys.talkers(number)],
                  [int(now)])


def from_reply(number: str, reply: list) -> dict[str, Any]:
    """The reputation object (`GET /v1/numbers/<number>`) from the read script's reply."""
    verdict, label, reporters, score, first, last, override, disputed, detected, held, violations = reply[:11]
    verdict, label = VERDICTS[int(verdict)], _label(int(label))
    per_tag = {}
    for i in range(11, len(reply), 3):
        per_tag[tags.TAXONOMY[int(reply[i])].code] = {"reporters": int(reply[i + 1]),
                                                      "score": round(float(reply[i + 2]), 3)}
    people = int(reporters)
    if detected:  # the detector's vote is evidence, not a person
        per_tag[DETECTOR_TAG]["reporters"] -= 1
        people -= 1
    return {
        "number": number,
        "verdict": verdict,
        "label": label,
        "score": round(float(score), 3),
        "reporters": people,
        "tags": per_tag,
        "first_seen": _iso(first),
        "last_seen": _iso(last),
        "lists": lists.lists_for(verdict, label),
        "override": _OVERRIDE_NAMES.get(override),
        "disputed": bool(disputed),
        "held": bool(held),
        "detected": [DETECTOR_TAG] if detected else [],
        "dnc_violations": int(violations),
    }


def violations_many(store: Store, numbers: list[str]) -> list[int]:
    """Each number's Do-Not-Call violations now: distinct reporters whose counted vote is one
    (the k field), in one pipelined round trip."""
    replies = store.pipelined(lambda pipe: [pipe.hget(store.keys.number(n), "k") for n in numbers]) if numbers else []
    return [int(reply or 0) for reply in replies]


def sweep(store: Store) -> int:
    """Re-evaluate every number whose verdict time alone may have changed by now (a block's
    decay ended, or a vote turned too old to count); return how many changed."""
    now = store.clock()
    changed = 0
    for bucket in range(store.config.buckets):
        schedule = store.keys.decay_schedule(bucket)
        seen: set[str] = set()  # a number re-scheduled at `now` by rounding is visited once
        while True:
            due = store.redis.zrangebyscore(schedule, "-inf", int(now), start=0, num=SWEEP_BATCH)
            fresh = [number for number in due if number not in seen]
            if not fresh:
                break
            seen.update(fresh)
            replies = store.pipelined(lambda pipe: [_report(store, ReportArgs.of(store, "eval", n, now), pipe=pipe)
                                                    for n in fresh])
            changed += sum(int(reply[3]) for reply in replies)
    return changed
