"""Reporter trust: the weight each device's tags carry, and the network they come from.

A device's weight is a whole percent in [0, 100] (docs/REPUTATION.md gives the reasoning):

- an ordinary device starts at 100: honest people tag from fresh installs too;
- a device registered in a burst on one network (more than CALLMARK_NETWORK_BURST_DEVICES
  registrations from its network within an hour) starts at CALLMARK_BURST_DEVICE_WEIGHT,
  and earns full weight back once it is no longer fresh and its tags agree with consensus;
- a device whose tags keep contradicting the settled consensus loses weight in proportion;
- a device that tags more than CALLMARK_HUMAN_DAILY_TAGS numbers in a day weighs nothing.

`review` recomputes the weights of devices that voted, on the scheduler's beat, and
re-weighs their existing votes, so a weight change reaches every number the device tagged.
Networks are kept only as keyed hashes: 16 bits in a vote, a longer hash for registrations.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import reputation, tags
from .keyed import keyed, voter_field
from .store import REPORTER_CREDIT, Store, credit

FULL = reputation.FULL_WEIGHT
SETTLED_MIN_REPORTERS = 2  # x CALLMARK_BLOCK_MIN_REPORTERS: a verdict no single vote decides
SETTLED_MIN_VOTES = 3  # settled votes before consensus moves a weight
CONTRADICTION_PENALTY = 2.0  # weight lost per share of contradicted votes (half wrong = nothing left)
REVIEW_SAMPLE = 200  # a device's votes read per review
REVIEW_BATCH = 200  # devices reviewed per call
RECHECK_SECONDS = 86400  # a reviewed device is looked at again a day later
REGISTRATION_WINDOW = 3600  # seconds over which a network's registrations are counted


@dataclass(frozen=True)
class Reporter:
    """What a vote needs to know about who cast it."""

    weight: int  # percent
    network: int  # 16-bit keyed network hash, 0 when networks are not recorded
    fresh: bool  # young enough for the burst guard to watch
    rank: int = reputation.STANDING  # FRESH, AGED or STANDING: its votes' credit toward a block


def network_of(config, address: str | None) -> str | None:
    """The network an address belongs to (`203.0.113.0/24`, `2001:db8:1::/48`), or None."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    bits = config.network_prefix_v4 if ip.version == 4 else config.network_prefix_v6
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def _network_digest(store: Store, network: str) -> bytes:
    return keyed(store.secret, "network", network)


def network_hash(store: Store, address: str | None) -> int:
    """The 16-bit keyed hash a vote records for its network (1..65535), or 0 when networks
    are not counted or the address is unknown."""
    network = network_of(store.config, address) if store.config.distinct_networks else None
    if network is None:
        return 0
    return int.from_bytes(_network_digest(store, network)[:2], "big") % 65535 + 1


def registration_weight(store: Store, address: str | None) -> int:
    """The starting weight of a device registering from `address` now."""
    network = network_of(store.config, address)
    if not store.config.burst_guard or network is None:
        return FULL
    key = store.keys.network_registrations(_network_digest(store, network).hex()[:24])
    pipe = store.redis.pipeline(transaction=False)
    pipe.set(key, 0, ex=REGISTRATION_WINDOW, nx=True)  # the hour starts at the first registration
    pipe.incr(key)
    _, registered = pipe.execute()
    return FULL if registered <= store.config.network_burst_devices else store.config.burst_device_weight


def ranks_differ(config) -> bool:
    """Whether fresh, aged and standing devices' votes count differently (production)."""
    return min(config.fresh_reporters_to_block, config.aged_reporters_to_block) > config.block_min_reporters


def rank_of(store: Store, created: float, standing: int) -> int:
    """FRESH while young, whatever it did; then STANDING once its early tags were borne out on
    enough numbers (`standing`, the device record's count), else AGED."""
    if not ranks_differ(store.config):
        return reputation.STANDING
    if store.clock() - created < store.config.fresh_device_days * 86400:
        return reputation.FRESH  # standing farmed in the first hours buys nothing for a week
    return reputation.STANDING if standing >= store.config.standing_min_numbers else reputation.AGED


def reporter(store: Store, device, address: str | None) -> Reporter:
    """How the votes `device` (a devices.Device) casts from `address` now count."""
    young = store.clock() - device.created < store.config.fresh_device_days * 86400
    fresh = store.config.burst_guard and young
    rank = rank_of(store, device.created, device.standing)
    return Reporter(weight=device.weight, network=network_hash(store, address), fresh=bool(fresh), rank=rank)


def note_votes(store: Store, device_id: str, numbers: list[str]) -> None:
    """Note a device's new and changed votes: the day's set of tagged numbers, the day's count
    of tags (a retag back and forth on one number counts every time), and a review soon."""
    if not numbers:
        return
    today, keys = int(store.clock() // 86400), store.keys
    note = store.script("blocklist", "device_note.lua")

    def fill(pipe) -> None:
        store.evalsha(pipe, note, [keys.device(device_id), keys.device_daily_tags(device_id, today),
                                   keys.device_daily_actions(device_id, today)],
                      [2 * 86400, *[n.lstrip("+") for n in numbers]])
        # (a device erased meanwhile is dropped from the queue at its review)
        pipe.zadd(keys.trust_due(), {device_id: store.clock()}, lt=True)

    store.pipelined(fill)


def forget(store: Store, device_id: str) -> None:
    """Drop what trust keeps of a device: its daily tallies and its place in the review queue."""
    today = int(store.clock() // 86400)
    pipe = store.redis.pipeline(transaction=False)
    for day in range(today - 2, today + 1):  # one key per DEL: redis-py's cluster pipeline wants that
        pipe.delete(store.keys.device_daily_tags(device_id, day))
        pipe.delete(store.keys.device_daily_actions(device_id, day))
    pipe.zrem(store.keys.trust_due(), device_id)
    pipe.execute()


def _settled(rep: dict, block_min: int) -> str | None:
    """'spam' or 'safe' when a number's verdict is settled beyond one vote, else None."""
    if rep["override"]:
        return "spam" if rep["override"] == "block" else "safe"
    if rep["reporters"] < SETTLED_MIN_REPORTERS * block_min:
        return None
    if rep["verdict"] == "block":
        return "spam"
    if rep["verdict"] == "allow" and rep["label"] == "safe":
        return "safe"
    return None


def weigh(store: Store, device_id: str) -> tuple[int, int]:
    """Recompute one device's weight; returns (old, new). Re-weighs its votes when it changed."""
    keys, config = store.keys, store.config
    device = store.redis.hgetall(keys.device(device_id))
    if not device:
        return FULL, FULL
    old = int(device.get("w", FULL))
    base = int(device.get("b", FULL))  # the starting weight: lower for a registration burst
    voter = voter_field(store.secret, device_id)
    sample = ["+" + d for d in store.redis.srandmember(keys.device_votes(device_id), REVIEW_SAMPLE)]
    now = store.clock()

    days = (int(now // 86400) - 1, int(now // 86400))  # yesterday and today

    def fill(pipe) -> None:
        for day in days:
            pipe.scard(keys.device_daily_tags(device_id, day))
            pipe.get(keys.device_daily_actions(device_id, day))
        for number in sample:
            pipe.hmget(keys.number(number), voter, "t", "c")
            reputation.queue_read(store, pipe, number, now)

    replies = store.pipelined(fill)
    busiest_day = max(int(reply or 0) for reply in replies[:2 * len(days)])
    replies = replies[2 * len(days):]
    agree = contradict = early = 0
    votes = []
    for i, number in enumerate(sample):
        (vote, blocked_hour, credit), rep = replies[2 * i], reputation.from_reply(number, replies[2 * i + 1])
        if vote is None:
            continue
        vote = int(vote)
        votes.append(vote)
        if _earned_standing(store, vote, rep, blocked_hour, credit):
            early += 1
        consensus = _settled(rep, config.block_min_reporters)
        if consensus is None:
            continue
        kind = tags.TAXONOMY[reputation.vote_tag(vote)].kind
        if kind == tags.INFO:
            continue
        if (kind == tags.SPAM) == (consensus == "spam"):
            agree += 1
        else:
            contradict += 1
    settled = agree + contradict
    fresh = now - float(device.get("c", now)) < config.fresh_device_days * 86400
    if base < FULL and not fresh and agree >= SETTLED_MIN_VOTES and contradict * 10 <= settled:
        base = FULL  # a burst device that has aged and agrees with the crowd is trusted again
    weight = base
    if settled >= SETTLED_MIN_VOTES:
        weight = round(base * max(0.0, 1.0 - CONTRADICTION_PENALTY * contradict / settled))
    if busiest_day > config.human_daily_tags:
        weight = 0
    # Standing once earned is kept, but not while a settled verdict contradicts the device.
    standing = 0 if contradict else max(early, int(device.get("st", 0)))
    rank = rank_of(store, float(device.get("c", now)), standing)
    if weight != old or base != int(device.get("b", FULL)) or standing != int(device.get("st", 0)):
        store.redis.hset(keys.device(device_id), mapping={"w": weight, "b": base, "st": standing})
    stale = any(reputation.vote_weight(vote) != weight or reputation.vote_class(vote) not in (rank, reputation.RETIRED)
                for vote in votes)
    if weight != old or stale:
        numbers = ["+" + d for d in store.redis.smembers(keys.device_votes(device_id))]
        reputation.reweigh_votes(store, numbers, voter, weight, rank)
    return old, weight


def _earned_standing(store: Store, vote: int, rep: dict, blocked_hour: str | None, credit: str | None) -> bool:
    """A spam tag earns standing when it came before the number's first block, and that
    block was reached without it: the rest of the crowd's credit suffices on its own.
    Tagging numbers already listed earns nothing."""
    if rep["verdict"] != "block" or rep["override"] or blocked_hour is None:
        return False
    if tags.TAXONOMY[reputation.vote_tag(vote)].kind != tags.SPAM:
        return False
    if reputation.vote_hour(vote) >= int(blocked_hour):
        return False
    config = store.config
    own = store_credit(config, reputation.vote_class(vote))
    return int(credit or 0) - own >= REPORTER_CREDIT * config.block_min_reporters


def store_credit(config, rank: int) -> int:
    """The credit (thousandths of a reporter) a vote of this rank adds toward a block."""
    if rank == reputation.FRESH:
        return credit(config.block_min_reporters, config.fresh_reporters_to_block)
    if rank == reputation.AGED:
        return credit(config.block_min_reporters, config.aged_reporters_to_block)
    return REPORTER_CREDIT if rank == reputation.STANDING else 0


def review(store: Store, limit: int = REVIEW_BATCH) -> int:
    """Recompute the weights of devices due for review; returns how many weights changed."""
    now = store.clock()
    due = store.redis.zrangebyscore(store.keys.trust_due(), "-inf", now, start=0, num=limit)
    changed = 0
    for device_id in due:
        old, new = weigh(store, device_id)
        changed += old != new
        if store.redis.exists(store.keys.device(device_id)):
            store.redis.zadd(store.keys.trust_due(), {device_id: now + RECHECK_SECONDS})
        else:
            store.redis.zrem(store.keys.trust_due(), device_id)
    return changed
