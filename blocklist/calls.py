"""The ring-once detector (响一声): call events in, an automatic `ring_once` tag out.

A ring-once caller lets a phone ring a second or two and hangs up, hoping for a call back
to a premium line. Phones report their calls (`POST /v1/calls`); when at least
CALLMARK_RING_ONCE_DEVICES distinct devices (distinct networks where that rule is on) see
unanswered incoming calls from one number ringing under CALLMARK_RING_ONCE_SECONDS within
CALLMARK_RING_ONCE_WINDOW_MINUTES, and hardly anyone answered that number in the window,
the detector votes `ring_once` on it. Its vote is the detector's, not a person's, and
counts as CALLMARK_BLOCK_MIN_REPORTERS fresh reports, so the number blocks and enters the
`ring_once` list at the next publish; like any evidence it decays.

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
from .store import Store

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
    network = trust.network_hash(store, address)
    member = f"n{network}" if network else voter_field(store.secret, device.id)
    now = store.clock()
    window = config.ring_once_window_minutes * 60
    short_key, answered_key = store.keys.ring_events(number, "short"), store.keys.ring_events(number, "answered")
    pipe = store.redis.pipeline(transaction=False)
    if conversation:  # who talked with the number: see docs/REPUTATION.md, "Numbers people talk with"
        pipe.pfadd(store.keys.talkers(number), member)
        pipe.expire(store.keys.talkers(number), config.talker_days * 86400)
    if detected:
        pipe.zadd(short_key if short else answered_key, {member: now})
        for key in (short_key, answered_key):
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.expire(key, window)
        pipe.zcard(short_key)
        pipe.zcard(answered_key)
    replies = pipe.execute()
    if not detected:
        return {"number": number, "counted": True, "ring_once": False}
    shorts, answers = replies[-2:]
    flagged = shorts >= config.ring_once_devices and answers <= MAX_ANSWERED_SHARE * shorts
    if flagged:
        reputation.cast_votes(store, [reputation.Vote(number=number, tag=reputation.DETECTOR_TAG,
                                                      voter=reputation.DETECTOR_VOTER, at=now)])
    elif answered and answers > MAX_ANSWERED_SHARE * shorts and shorts:
        # People answer it after all: the detector takes its vote back, if it had cast one.
        reputation.withdraw_vote(store, number, reputation.DETECTOR_VOTER)
    return {"number": number, "counted": True, "ring_once": flagged}
