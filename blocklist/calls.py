"""The ring-once detector (响一声): call events in, an automatic `ring_once` tag out.

A ring-once caller lets a phone ring a second or two and hangs up, hoping for a call back
to a premium line. Phones report their calls (`POST /v1/calls`); when at least
CALLMARK_RING_ONCE_DEVICES distinct devices (distinct networks where that rule is on) see
unanswered incoming calls from one number ringing under CALLMARK_RING_ONCE_SECONDS within
CALLMARK_RING_ONCE_WINDOW_MINUTES, and hardly anyone answered that number in the window,
the detector votes `ring_once` on it. The devices that saw the rings must meet the rules
reporters meet: each counts with the block credit of its rank (fresh, aged, standing: see
lua/verdict.lua), one per network, and together they must reach CALLMARK_RING_ONCE_DEVICES
reporters' worth; when CALLMARK_BURST_MIN_TAGS of them are fresh devices (burst guard on),
the number is held at warn for review like a burst of tags. Its vote is the detector's, not
a person's, and counts as CALLMARK_BLOCK_MIN_REPORTERS fresh reports, so the number blocks
and enters the `ring_once` list at the next publish; like any evidence it decays.

Of each event the detector keeps only what it needs, and only for its window: a keyed hash
of the device (or of its network) and the time, in one of two sorted sets per number.
Calls that are neither short and unanswered nor answered are not stored at all.

An answered call of CALLMARK_CONVERSATION_SECONDS or more, in either direction, is a
conversation: the same keyed hash goes into the number's HyperLogLog of talkers (kept
CALLMARK_TALKER_DAYS after the last one), and a number many people talk with needs more
spam reporters to block (docs/REPUTATION.md).
"""
from __future__ import annotations

from typing import Any

from . import numbers, reputation, trust
from .devices import Device, voter_field
from .store import REPORTER_CREDIT, Store

MAX_ANSWERED_SHARE = 0.1  # answered devices per short-ring device above which no flag is raised
MIN_WEIGHT = 50  # percent: devices trusted less than this are not counted


def record(store: Store, device: Device, address: str | None, event: dict[str, Any]) -> dict[str, Any]:
    """Take one call event: a conversation is counted for the number's talkers, a short
    unanswered or an answered incoming call goes to the ring-once detector, which casts or
    takes back its vote."""
    config = store.config
    number = numbers.normalize(event["number"], event.get("region") or config.default_region)
    answered = event["answered"]
    conversation = answered and event.get("duration_seconds", 0) >= config.conversation_seconds
    short = not answered and event["ring_seconds"] < config.ring_once_seconds
    detected = event["direction"] == "incoming" and (short or answered)
    if device.weight < MIN_WEIGHT or not (conversation or detected):
        return {"number": number, "counted": False, "ring_once": False}
    who = trust.reporter(store, device, address)
    network = who.network
    # who saw it (a network, or the device where networks are not counted), its rank, and
    # whether it is a fresh device the burst guard watches
    seen_by = f"n{network}" if network else voter_field(store.secret, device.id)
    member = f"{seen_by}:{who.rank}:{int(who.fresh)}"
    now = store.clock()
    window = config.ring_once_window_minutes * 60
    short_key, answered_key = store.keys.ring_events(number, "short"), store.keys.ring_events(number, "answered")
    pipe = store.redis.pipeline(transaction=False)
    if conversation:  # who talked with the number: see docs/REPUTATION.md, "Numbers people talk with"
        pipe.pfadd(store.keys.talkers(number), seen_by)
        pipe.expire(store.keys.talkers(number), config.talker_days * 86400)
    if detected:
        pipe.zadd(short_key if short else answered_key, {member: now})
        for key in (short_key, answered_key):
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.expire(key, window)
        pipe.zrange(short_key, 0, -1)
        pipe.zrange(answered_key, 0, -1)
    replies = pipe.execute()
    if not detected:
        return {"number": number, "counted": True, "ring_once": False}
    short_seen, answered_seen = replies[-2:]
    credit, fresh, shorts = _credit(config, short_seen)
    answers = len({member.split(":", 1)[0] for member in answered_seen})
    flagged = credit >= REPORTER_CREDIT * config.ring_once_devices and answers <= MAX_ANSWERED_SHARE * shorts
    if flagged:
        burst = config.burst_guard and fresh >= config.burst_min_tags
        reputation.cast_votes(store, [reputation.Vote(number=number, tag=reputation.DETECTOR_TAG,
                                                      voter=reputation.DETECTOR_VOTER, at=now, fresh=burst)])
    elif answered and answers > MAX_ANSWERED_SHARE * shorts and shorts:
        # People answer it after all: the detector takes its vote back, if it had cast one.
        reputation.withdraw_vote(store, number, reputation.DETECTOR_VOTER)
    return {"number": number, "counted": True, "ring_once": flagged}


def _credit(config, members: list[str]) -> tuple[int, int, int]:
    """The block credit of the devices behind `members` (the best rank per network or
    device), how many of them are fresh devices, and how many networks or devices there are."""
    best: dict[str, int] = {}
    fresh: set[str] = set()
    for member in members:
        seen_by, rank, is_fresh = member.rsplit(":", 2)
        best[seen_by] = max(best.get(seen_by, 0), trust.store_credit(config, int(rank)))
        if is_fresh == "1":
            fresh.add(seen_by)
    return sum(best.values()), len(fresh), len(best)
