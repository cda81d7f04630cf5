"""Simulate CallMark under the production profile and measure the reputation model.

A seeded population drives the real code path (reports.submit, calls.record, trust.review,
moderation, the Lua scripts, and the HTTP batch and dispute routes through Flask's test
client) against a real Redis with an injected clock. Three kinds of world:

- the honest world: WARMUP_DAYS simulated days of warm-up, then the measured day(s), so
  honest devices have a history (ranks, standing) when the measured spammers appear.
  Legitimate numbers, a few of them popular hotlines that many users are called by; honest
  users give hotlines informational tags now and then, and mistaken spam tags at
  MISTAKE_RATE of all their tags, spread over legitimate numbers in proportion to their
  calls, through warm-up and measured day alike. Spammers call many users an hour, some
  rotating through consecutive numbers; honest users tag a spam call with probability
  TAG_PROBABILITY. Ring-once operators ring a second and hang up. Phones report calls.
- the launch day: the same traffic on the day the service opens, every device fresh;
- named attack scenarios in worlds of their own (SCENARIOS), each returning a dict of
  figures with its goal.

`run(quick=True)` is what tests/test_simulation.py asserts on.

    python bench/simulate.py [--quick] [--seed N] [--ftc]
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blocklist import calls, devices, importer, lists, moderation, reports, reputation, trust  # noqa: E402
from blocklist.config import Config  # noqa: E402
from blocklist.web import create_app  # noqa: E402

HOUR = 3600
DAY = 86400
START = 1_790_000_000  # a fixed unix time (2026-09-21): the measured day starts here
WARMUP_DAYS = 14  # simulated days of the honest world before the measured day
NEWCOMER_SHARE = 0.05  # honest users who install the app during the warm-up or the measured day
TAG_PROBABILITY = 0.3  # an honest user tags a spam call with this probability
MISTAKE_RATE = 0.03  # share of honest users' tags that land on a legitimate number
INFO_TAG_PROBABILITY = 0.02  # a call from a hotline gets its informational tag
SPAM_ANSWERED = 0.5  # spam calls answered
SPAM_TALKED = 0.2  # answered spam calls that last a minute or more (a telemarketer's pitch)
SPAM_TAGS = ("loan", "real_estate", "fraud", "insurance", "education", "telemarketing")
REPORTS_PER_MINUTE = 60  # the production report limit's per-minute budget (CALLMARK_RATE_LIMIT_REPORTS)
SECRET = "simulation-secret-0123456789abcdefghij"
SIGNING_KEY = base64.b64encode(bytes(range(32))).decode()  # a fixed Ed25519 seed: production wants one


@dataclass
class Sizes:
    users: int
    legit: int
    popular: int
    spammers: int
    rotating: int  # of the spammers, those that move to the next number every few hours
    ring_once: int
    spam_calls_per_hour: int
    hours: int  # the measured period after the warm-up
    warmup_number_hours: int = 8  # during the warm-up a spammer moves to a new number this often
    warmup_review_hours: int = 24  # and the trust review runs this often (hourly in the measured period)
    batches: int = 3  # batch requests of 500 items the batch-amplification scenario sends at most


QUICK = Sizes(users=1000, legit=700, popular=7, spammers=40, rotating=8, ring_once=6,
              spam_calls_per_hour=8, hours=24)
FULL = Sizes(users=6000, legit=5000, popular=50, spammers=300, rotating=60, ring_once=30,
             spam_calls_per_hour=12, hours=48, batches=6)


@dataclass
class Caller:
    number: str
    tag: str
    first_report: float | None = None
    reports: int = 0
    blocked_at: float | None = None
    reports_to_block: int | None = None
    numbers_used: list[str] = field(default_factory=list)


@dataclass
class User:
    device: devices.Device
    address: str
    created: float


def production_config(redis_url: str | None, **settings) -> Config:
    """The production profile (ranks, distinct networks, burst guard, rate limits) with a
    fixed secret and signing key, the scheduler's sweep and publish off."""
    return Config(redis_url=redis_url, profile="production", secret_key=SECRET, signing_key=SIGNING_KEY,
                  log_level="WARNING",
                  data_dir=tempfile.mkdtemp(prefix="cm-sim-"), sweep_interval=0, publish_interval=0, **settings)


class World:
    def __init__(self, redis_url: str | None, seed: int, **settings):
        self.now = float(START)
        self.random = random.Random(seed)
        self.app = create_app(production_config(redis_url, clock=lambda: self.now, **settings))
        self.store = self.app.extensions["callmark"]
        self.store.redis.flushdb()
        self.networks = 0

    def address(self, network: int | None = None) -> str:
        """An address on a given network, or on a new one: 10.x.y.z with the /24 as network."""
        if network is None:
            self.networks += 1
            network = self.networks
        return f"10.{network // 256 % 256}.{network % 256}.{self.random.randint(1, 254)}"

    def device(self, created: float | None = None, network: int | None = None) -> User:
        """A device registered at `created` (default: now) on `network` (default: a new one)."""
        created = self.now if created is None else created
        address = self.address(network)
        now, self.now = self.now, created
        _, token = devices.register(self.store, address)
        device = devices.authenticate(self.store, token)
        self.now = now
        return User(device, address, created)

    def tag(self, user: User, number: str, tag: str) -> None:
        reports.submit(self.store, user.device, user.address, {"number": number, "tag": tag})

    def call(self, user: User, number: str, **event) -> dict:
        return calls.record(self.store, user.device, user.address, {"number": number, **event})

    def verdict(self, number: str) -> dict:
        return reputation.lookup(self.store, number)

    def review(self, users: list[User] = ()) -> None:
        """The scheduler's trust review; the devices then carry their new weights and standing
        (a phone's next request authenticates afresh)."""
        trust.review(self.store, limit=1_000_000)
        self.refresh(users)

    def refresh(self, users: list[User]) -> None:
        """Re-read the devices' records, as authentication would."""
        if not users:
            return
        pipe = self.store.redis.pipeline(transaction=False)
        for user in users:
            pipe.hmget(self.store.keys.device(user.device.id), "w", "st")
        for user, (weight, standing) in zip(users, pipe.execute()):
            user.device = dataclasses.replace(user.device, weight=int(weight or trust.FULL),
                                              standing=int(standing or 0))

    def standing(self, users: list[User]) -> list[int]:
        """Each device's standing count (`st`: early tags borne out by the crowd)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for user in users:
            pipe.hget(self.store.keys.device(user.device.id), "st")
        return [int(v or 0) for v in pipe.execute()]

    def weights(self, users: list[User]) -> list[int]:
        pipe = self.store.redis.pipeline(transaction=False)
        for user in users:
            pipe.hget(self.store.keys.device(user.device.id), "w")
        return [int(v or trust.FULL) for v in pipe.execute()]


def _hour_start(t: float) -> float:
    """The start of the hour `t` falls in (votes record their hour)."""
    return t // HOUR * HOUR


def _numbers(rng: random.Random, count: int, prefix: str) -> list[str]:
    return [f"{prefix}{rng.randrange(10**8):08d}" for _ in range(count)]


# --- the honest world and the launch day --------------------------------------------------

@dataclass
class Crowd:
    """Who calls whom: the users, the legitimate numbers, the spammers and ring-once operators."""

    users: list[User]
    legit: list[str]
    popular: set[str]
    spammers: list[Caller]
    ring_once: list[Caller]
    honest_tags: int = 0
    mistakes: int = 0
    mistaken_by: dict[str, list[User]] = field(default_factory=dict)  # legit number -> who tagged it spam
    saturated: set[str] = field(default_factory=set)  # hotlines whose talkers are at the cap
    pending: dict[str, list[tuple[User, float]]] = field(default_factory=dict)  # conversations not yet reported
    ring_flag_hours: list[float] = field(default_factory=list)
    blocks: list[tuple[float, int]] = field(default_factory=list)  # (when, honest reports it took)


def _crowd(world: World, sizes: Sizes, users: list[User]) -> Crowd:
    rng = world.random
    legit = _numbers(rng, sizes.legit, "+86139")
    spammers = [Caller(n, rng.choice(SPAM_TAGS)) for n in _numbers(rng, sizes.spammers, "+86137")]
    ring_once = [Caller(n, "ring_once") for n in _numbers(rng, sizes.ring_once, "+86136")]
    return Crowd(users, legit, set(legit[:sizes.popular]), spammers, ring_once)


def _measured_callers(crowd: Crowd, sizes: Sizes, rng: random.Random) -> None:
    """The measured period's spammers: numbers nobody reported before, the rotating operators
    at the top of a block of 100."""
    for i, caller in enumerate(crowd.spammers):
        number = _numbers(rng, 1, "+86137")[0]
        if i < sizes.rotating:
            number = number[:-2] + "00"
        crowd.spammers[i] = Caller(number, caller.tag, numbers_used=[number])
    for caller in crowd.ring_once:
        caller.numbers_used = [caller.number]


def _hours(world: World, crowd: Crowd, sizes: Sizes, base: float, hours: int, measured: bool,
           progress: str | None = None) -> None:
    """Simulate `hours` hours from `base`. In the warm-up (`measured` False) spammers move to
    a new number every sizes.warmup_number_hours, and phones report only the call events that
    can change a verdict: conversations. Those with a hotline stop once its talkers need the
    cap of reporters; those with an ordinary number are reported just before the number's
    first tag (a talker count is a set: when a conversation is added does not matter, only
    that it is in before a vote is judged). Ring-once windows last an hour, so other events
    of the warm-up would be forgotten by the measured day; a warm-up spam number has a
    handful of talkers, far below the 61 at which talkers raise the bar."""
    rng = world.random
    config = world.store.config
    kind = {n: ("delivery" if i % 2 else "customer_service") for i, n in enumerate(crowd.legit)}
    review_every = 1 if measured else sizes.warmup_review_hours
    for hour in range(hours):
        world.now = base + hour * HOUR
        active = [u for u in crowd.users if u.created <= world.now]
        for i, caller in enumerate(crowd.spammers):
            if measured and i < sizes.rotating and hour and hour % 3 == 0:
                caller.number = f"{caller.number[:-2]}{int(caller.number[-2:]) + 1:02d}"  # the next number
                caller.numbers_used.append(caller.number)
            elif not measured and hour % sizes.warmup_number_hours == 0:
                caller.number = _numbers(rng, 1, "+86137")[0]
                caller.first_report = caller.blocked_at = caller.reports_to_block = None
                caller.reports = 0
            for at, user in _spread(rng, base + hour * HOUR, rng.sample(active, sizes.spam_calls_per_hour)):
                world.now = at
                answered = rng.random() < SPAM_ANSWERED
                talked = rng.uniform(60, 180) if rng.random() < SPAM_TALKED else rng.uniform(2, 30)
                ring = rng.uniform(3, 20)
                if measured:
                    world.call(user, caller.number, answered=answered, ring_seconds=ring, direction="incoming",
                               duration_seconds=talked if answered else 0)
                if rng.random() < TAG_PROBABILITY:
                    world.tag(user, caller.number, caller.tag)
                    crowd.honest_tags += 1
                    _count_report(world, crowd, caller)
        if measured:
            for caller in crowd.ring_once:
                for at, user in _spread(rng, base + hour * HOUR, rng.sample(active, sizes.spam_calls_per_hour)):
                    world.now = at
                    result = world.call(user, caller.number, answered=False, ring_seconds=rng.uniform(0.5, 2.0),
                                        direction="incoming")
                    if result["ring_once"] and caller.blocked_at is None:
                        caller.blocked_at = world.now
                        crowd.ring_flag_hours.append(hour)
        # Legitimate calls: popular hotlines call many users, the rest a few; most are answered.
        mistakes_due = MISTAKE_RATE / (1 - MISTAKE_RATE) * crowd.honest_tags - crowd.mistakes
        legit_calls = [(n, 30 if n in crowd.popular else 1) for n in crowd.legit
                       if n in crowd.popular or rng.random() < 0.2]
        total_calls = sum(c for _, c in legit_calls)
        for number, count in legit_calls:
            for at, user in _spread(rng, base + hour * HOUR, rng.sample(active, count)):
                world.now = at
                answered = rng.random() < 0.8
                ring, duration = rng.uniform(4, 25), rng.uniform(20, 600) if answered else 0
                if measured or (number in crowd.popular and number not in crowd.saturated
                                and duration >= config.conversation_seconds):
                    world.call(user, number, answered=answered, ring_seconds=ring, direction="incoming",
                               duration_seconds=duration)
                elif duration >= config.conversation_seconds and number not in crowd.popular:
                    crowd.pending.setdefault(number, []).append((user, duration))
                if rng.random() < INFO_TAG_PROBABILITY and number in crowd.popular:
                    world.tag(user, number, kind[number])
                elif rng.random() < mistakes_due / max(1, total_calls):
                    _report_conversations(world, crowd, number)
                    world.tag(user, number, rng.choice(SPAM_TAGS))
                    crowd.mistakes += 1
                    crowd.mistaken_by.setdefault(number, []).append(user)
        if hour % review_every == review_every - 1:
            world.now = base + (hour + 1) * HOUR - 1
            world.review(crowd.users)
        if not measured and hour % 24 == 23:
            _note_saturated(world, crowd)
        if progress:
            print(f"{progress}: simulated hour {hour + 1} of {hours}", file=sys.stderr, flush=True)


def _spread(rng: random.Random, hour_start: float, users: list[User]) -> list[tuple[float, User]]:
    """One caller's calls to `users` at random moments of the hour, in order: each number's
    events reach the burst guard and the ring-once window in time order."""
    return sorted(((hour_start + rng.uniform(0, HOUR - 1), user) for user in users), key=lambda call: call[0])


def _report_conversations(world: World, crowd: Crowd, number: str) -> None:
    """Report the warm-up's conversations with an ordinary number that are not in yet."""
    for user, duration in crowd.pending.pop(number, []):
        world.call(user, number, answered=True, ring_seconds=10, direction="incoming", duration_seconds=duration)


def _note_saturated(world: World, crowd: Crowd) -> None:
    """Hotlines whose talkers need the cap of reporters: further conversations change nothing."""
    config = world.store.config
    enough = config.talker_cap / config.talker_share
    pipe = world.store.redis.pipeline(transaction=False)
    hotlines = sorted(crowd.popular - crowd.saturated)
    for number in hotlines:
        pipe.pfcount(world.store.keys.talkers(number))
    crowd.saturated.update(n for n, talkers in zip(hotlines, pipe.execute()) if talkers >= enough)


def _count_report(world: World, crowd: Crowd, caller: Caller) -> None:
    if caller.first_report is None:
        caller.first_report = world.now
    caller.reports += 1
    if caller.blocked_at is None and world.verdict(caller.number)["verdict"] == "block":
        caller.blocked_at, caller.reports_to_block = world.now, caller.reports
        crowd.blocks.append((world.now, caller.reports))


def _spam_figures(world: World, crowd: Crowd, sizes: Sizes, users: int, hours: int) -> dict:
    """The measured period's figures: recall, reports to block, false blocks, ranges, ring-once."""
    verdicts = {n: world.verdict(n) for n in crowd.legit}
    falsely_blocked = [n for n, v in verdicts.items() if v["verdict"] == "block"]
    spammers = crowd.spammers
    reported = [c for c in spammers if c.first_report is not None]
    within_day = [c for c in reported if c.blocked_at is not None and c.blocked_at - c.first_report <= DAY]
    keepers = [c for c in spammers[sizes.rotating:] if c.first_report is not None]
    keepers_within_day = [c for c in keepers if c.blocked_at is not None and c.blocked_at - c.first_report <= DAY]
    blocked_spam = [c for c in spammers if c.blocked_at is not None]
    blocked_numbers = [n for c in spammers for n in c.numbers_used if world.verdict(n)["verdict"] == "block"]
    ranges = lists.ranges(blocked_numbers)
    # a rotating operator's block is covered when the range list holds its block of 10 or of 100
    covered = [c for c in spammers[:sizes.rotating] if set(lists.block_keys(c.numbers_used[0])) & ranges]
    answered_flags = [n for n in crowd.legit if "ring_once" in verdicts[n]["detected"]]
    standing = dict(zip([u.device.id for u in crowd.users], world.standing(crowd.users)))
    min_standing = world.store.config.standing_min_numbers
    return {
        "users": users, "legit": sizes.legit, "spammers": sizes.spammers, "hours": hours,
        "honest_tags": crowd.honest_tags, "mistaken_tags": crowd.mistakes,
        "mistake_share": crowd.mistakes / max(1, crowd.honest_tags + crowd.mistakes),
        "precision": len(blocked_spam) / max(1, len(blocked_spam) + len(falsely_blocked)),
        "recall_within_day": len(within_day) / max(1, len(reported)),
        "recall_within_day_keepers": len(keepers_within_day) / max(1, len(keepers)),
        "median_reports_to_block": statistics.median([c.reports_to_block for c in blocked_spam] or [0]),
        "median_hours_to_block": statistics.median([(c.blocked_at - c.first_report) / HOUR
                                                    for c in blocked_spam] or [0]),
        "false_blocks": len(falsely_blocked), "false_block_rate": len(falsely_blocked) / sizes.legit,
        "falsely_blocked": [{"number": n, "reporters": verdicts[n]["reporters"],
                             "mistaken_taggers": len(crowd.mistaken_by.get(n, [])),
                             "with_standing": sum(1 for u in crowd.mistaken_by.get(n, [])
                                                  if standing[u.device.id] >= min_standing),
                             "hotline": n in crowd.popular} for n in falsely_blocked],
        "legit_with_3_mistakes": sum(1 for n in crowd.legit if len(crowd.mistaken_by.get(n, [])) >= 3),
        "rotating_operators_in_ranges": len(covered), "rotating_operators": sizes.rotating,
        "ring_once_flagged": sum(1 for c in crowd.ring_once if c.blocked_at is not None),
        "ring_once": len(crowd.ring_once),
        "ring_once_blocked": sum(1 for c in crowd.ring_once if world.verdict(c.number)["verdict"] == "block"),
        "ring_once_held": sum(1 for c in crowd.ring_once if world.verdict(c.number)["held"]),
        "ring_once_median_flag_hour": statistics.median(crowd.ring_flag_hours) if crowd.ring_flag_hours else None,
        "answered_numbers_flagged": len(answered_flags),
    }


def _ranks(world: World, users: list[User]) -> dict:
    """Shares of the active devices by rank now, and of those that have earned standing
    (a fresh device's counts only once it is past the fresh window)."""
    config = world.store.config
    active = [u for u in users if u.created <= world.now]
    standing = world.standing(active)
    weights = world.weights(active)
    names = {reputation.FRESH: "fresh", reputation.AGED: "aged", reputation.STANDING: "standing"}
    counts = {"standing": 0, "aged": 0, "fresh": 0}
    for user, st in zip(active, standing):
        counts[names[trust.rank_of(world.store, user.created, st)]] += 1
    share = lambda n: round(n / max(1, len(active)), 3)  # noqa: E731
    return {**{k: share(v) for k, v in counts.items()},
            "earned_standing": share(sum(1 for st in standing if st >= config.standing_min_numbers)),
            "below_full_weight": share(sum(1 for w in weights if w < trust.FULL))}


def honest_world(sizes: Sizes, redis_url: str | None, seed: int, warmup_days: int = WARMUP_DAYS,
                 progress: bool = False, **settings) -> dict:
    """The honest world: `warmup_days` of history, then the measured period. `settings`
    override the production defaults (Config fields), to try a knob."""
    world = World(redis_url, seed, **settings)
    rng = world.random
    first = START - warmup_days * DAY
    span = warmup_days * DAY + sizes.hours * HOUR
    users = [world.device(created=first + rng.uniform(0, span) if rng.random() < NEWCOMER_SHARE
                          else first - rng.uniform(30, 400) * DAY) for _ in range(sizes.users)]
    crowd = _crowd(world, sizes, users)
    _hours(world, crowd, sizes, first, warmup_days * 24, measured=False, progress="warm-up" if progress else None)
    # the warm-up's spam numbers: honest reports it took to block them on its first and last day
    warm = [[n for at, n in crowd.blocks if at < first + DAY], [n for at, n in crowd.blocks if at >= START - DAY]]
    world.now = START
    ranks = _ranks(world, users)
    _measured_callers(crowd, sizes, rng)
    _hours(world, crowd, sizes, START, sizes.hours, measured=True, progress="measured" if progress else None)
    world.now = START + sizes.hours * HOUR
    result = _spam_figures(world, crowd, sizes, sizes.users, sizes.hours)
    result.update(warmup_days=warmup_days, ranks_at_start=ranks, ranks_at_end=_ranks(world, users),
                  warmup_first_day_median_reports_to_block=statistics.median(warm[0] or [0]),
                  warmup_last_day_median_reports_to_block=statistics.median(warm[-1] or [0]))
    return result


def launch_day(sizes: Sizes, redis_url: str | None, seed: int, progress: bool = False) -> dict:
    """The day the service opens: every device fresh (registered at the launch, each on its own
    network), the same traffic, 24 hours."""
    world = World(redis_url, seed + 1000)
    users = [world.device(created=START - world.random.uniform(0, HOUR)) for _ in range(sizes.users)]
    crowd = _crowd(world, sizes, users)
    _measured_callers(crowd, sizes, world.random)
    _hours(world, crowd, sizes, START, 24, measured=True, progress="launch day" if progress else None)
    world.now = START + 24 * HOUR
    result = _spam_figures(world, crowd, sizes, sizes.users, 24)
    held = sum(1 for c in crowd.spammers for n in c.numbers_used if world.verdict(n)["held"])
    return {k: result[k] for k in ("recall_within_day_keepers", "recall_within_day", "median_reports_to_block",
                                   "median_hours_to_block", "false_blocks", "false_block_rate",
                                   "ring_once_flagged", "ring_once", "ring_once_blocked", "ring_once_held",
                                   "ring_once_median_flag_hour", "answered_numbers_flagged")} | {
        "held_spam_numbers": held, "ranks_at_end": _ranks(world, users),
        "goal": "recall within 24 h of spammers keeping their number >= 75 %",
        "met": result["recall_within_day_keepers"] >= 0.75}


# --- griefing of legitimate numbers (kept from the first model) --------------------------

def grief_fresh_burst(redis_url: str | None, seed: int, attackers: int) -> str:
    """`attackers` devices registered within minutes on one network tag one legitimate number."""
    world = World(redis_url, seed)
    target = "+8613912345678"
    for i in range(attackers):
        world.now = START + i * 20
        world.tag(world.device(network=9_999), target, "fraud")
    world.now = START + HOUR
    world.review()
    return world.verdict(target)["verdict"]


def grief_aged_spread(redis_url: str | None, seed: int, talkers: int, days: int = 14, most: int = 80) -> int | None:
    """How many aged devices without standing, each on its own network and tagging once
    (spread over `days`), it takes to block a legitimate number that `talkers` honest users
    talked with and never tagged; None if `most` do not."""
    world = World(redis_url, seed)
    target = "+8613912345679"
    for _ in range(talkers):  # conversations over the weeks before the attack
        world.call(world.device(created=START - 60 * DAY), target, answered=True, ring_seconds=5,
                   duration_seconds=180, direction="outgoing")
    team = [world.device(created=START - 60 * DAY) for _ in range(most)]
    for i, who in enumerate(team):
        world.now = START + (i * days * DAY) // most
        world.tag(who, target, "fraud")
        if world.verdict(target)["verdict"] == "block":
            return i + 1
    return None


# --- named attack scenarios --------------------------------------------------------------

def _sybils_to_block(world: World, created_days_ago: float, most: int, spacing: float) -> tuple[int | None, dict]:
    """Sybils, each registered `created_days_ago` before its tag on its own /24, tag one number
    nobody talks with, one every `spacing` seconds, the trust review running hourly: how many
    it takes to block it (None: `most` do not), and its verdict after 20."""
    target = "+8613912345670"
    at_20 = None
    last_review = world.now
    for i in range(most):
        world.now = START + i * spacing
        if world.now - last_review >= HOUR:
            world.review()
            last_review = world.now
        world.tag(world.device(created=world.now - created_days_ago * DAY), target, "fraud")
        verdict = world.verdict(target)
        if i + 1 == 20:
            at_20 = verdict
        if verdict["verdict"] == "block":
            return i + 1, at_20 or verdict
    return None, at_20 or verdict


def fresh_sybils(redis_url: str | None, seed: int, most: int = 40) -> dict:
    world = World(redis_url, seed)
    needed, at_20 = _sybils_to_block(world, 0, most, 30 * 60)
    return {"sybils_to_block": needed, "verdict_at_20": at_20["verdict"], "held": at_20["held"],
            "spacing_minutes": 30, "goal": "more than 20", "met": needed is None or needed > 20}


def aged_sybils(redis_url: str | None, seed: int, most: int = 40) -> dict:
    world = World(redis_url, seed)
    needed, _ = _sybils_to_block(world, 30, most, 30 * 60)
    return {"sybils_to_block": needed, "device_age_days": 30, "spacing_minutes": 30, "goal": "at least 10",
            "met": needed is None or needed >= 10}


def _retag(redis_url: str | None, seed: int, team_size: int) -> dict:
    world = World(redis_url, seed)
    target = "+8613912345671"
    team = [world.device(created=START - 600 + i) for i in range(team_size)]
    for i, who in enumerate(team):  # an informational tag first...
        world.now = START + i * 20
        world.tag(who, target, "delivery")
    for i, who in enumerate(team):  # ...then, minutes later, the spam tag
        world.now = START + 600 + i * 20
        world.tag(who, target, "fraud")
    world.now += 60
    world.review()
    verdict = world.verdict(target)
    return {"verdict": verdict["verdict"], "held": verdict["held"]}


def retag(redis_url: str | None, seed: int) -> dict:
    """10 fresh devices on 10 /24s tag `delivery`, then retag `fraud`; and the same with 25,
    whose credit (25 x 3/21 reporters) would block without the burst guard."""
    ten, many = _retag(redis_url, seed, 10), _retag(redis_url, seed, 25)
    return {"verdict": ten["verdict"], "held": ten["held"], "verdict_25": many["verdict"], "held_25": many["held"],
            "goal": "held or not blocked",
            "met": all(r["held"] or r["verdict"] != "block" for r in (ten, many))}


def _ring_once_attack(redis_url: str | None, seed: int, created_days_ago: float, most: int) -> tuple:
    """Devices, each on its own /24, post an unanswered 1-second ring from one number via
    calls.record, one a minute: the verdict after 3, and how many it takes to block."""
    world = World(redis_url, seed)
    target = "+8613612345672"
    at_3, needed, flagged = None, None, None
    for i in range(most):
        world.now = START + i * 60
        who = world.device(created=world.now - created_days_ago * DAY)
        if world.call(who, target, answered=False, ring_seconds=1.0, direction="incoming")["ring_once"]:
            flagged = flagged or i + 1
        verdict = world.verdict(target)
        if i + 1 == 3:
            at_3 = verdict["verdict"]
        if verdict["verdict"] == "block":
            needed = i + 1
            break
    return at_3, needed, flagged, verdict


def detector_abuse(redis_url: str | None, seed: int, most: int = 40) -> dict:
    at_3, needed, flagged, final = _ring_once_attack(redis_url, seed, 0, most)
    _, aged_needed, _, _ = _ring_once_attack(redis_url, seed, 30, most)
    return {"verdict_at_3": at_3, "fresh_devices_to_block": needed, "fresh_devices_to_flag": flagged,
            "verdict_after_40": final["verdict"], "held": final["held"], "aged_devices_to_block": aged_needed,
            "goal": "no block by 3 fresh devices", "met": at_3 != "block"}


def batch_amplification(redis_url: str | None, seed: int, batches: int = 3) -> dict:
    """One fresh device posts batches of 500 reports through the HTTP route of a production
    app (Flask's test client: the real rate limits, in real time); how many items are
    accepted within a minute."""
    world = World(redis_url, seed)
    client = world.app.test_client()
    environ = {"REMOTE_ADDR": world.address()}
    token = client.post("/v1/devices", environ_base=environ).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    rng = world.random
    began = time.monotonic()
    accepted = accepted_first_minute = refused_items = refused_requests = 0
    for _ in range(batches):
        items = [{"number": f"+86135{rng.randrange(10**8):08d}", "tag": "fraud"} for _ in range(500)]
        sent = time.monotonic()
        answer = client.post("/v1/reports/batch", json={"reports": items}, headers=headers, environ_base=environ)
        if answer.status_code == 429:
            refused_requests += 1
            refused_items += len(items)
            continue
        results = answer.get_json()["results"]
        ok = sum(1 for r in results if r["status"] == 201)
        accepted += ok
        refused_items += sum(1 for r in results if r["status"] == 429)
        if sent - began < 60:
            accepted_first_minute += ok
    elapsed = time.monotonic() - began
    world.now += HOUR
    world.review()
    device_id = token.split(".", 1)[0]
    weight = int(world.store.redis.hget(world.store.keys.device(device_id), "w") or trust.FULL)
    return {"accepted_per_minute": accepted_first_minute, "accepted": accepted, "items_sent": 500 * batches,
            "refused_items": refused_items, "refused_requests": refused_requests,
            "elapsed_seconds": round(elapsed, 1), "weight_after_review": weight,
            "goal": f"<= {REPORTS_PER_MINUTE} a minute", "met": accepted_first_minute <= REPORTS_PER_MINUTE}


def _honest_standing(world: World, count: int) -> list[User]:
    """Honest aged devices with standing, each on its own network: what the warm-up leaves most
    honest devices with (their `st` is set as the trust review would have)."""
    users = [world.device(created=START - 60 * DAY) for _ in range(count)]
    for user in users:
        world.store.redis.hset(world.store.keys.device(user.device.id), "st", world.store.config.standing_min_numbers)
    world.refresh(users)
    return users


def _farm(world: World, honest: list[User], sybils: list[User], begin: float, per_number: int,
          numbers_each: int) -> float | None:
    """Sybils farm standing on real spam numbers: from `begin` (an hour's start) a new spam
    number every 2 hours gets honest reports at :00, :30 and on the next hour (which blocks
    it), then five more over two hours; the attacker, who gets the same spam calls on his own
    SIMs, tags it with `per_number` sybils in the hour before it blocks, until each sybil has
    tagged `numbers_each` numbers. The trust review runs hourly until every sybil has standing
    (at most 3 days after the last tag). Returns when the third sybil earned standing."""
    rng = world.random
    min_standing = world.store.config.standing_min_numbers
    events = []  # (time, order, who, number)
    tagged = [0] * len(sybils)
    for k in range((len(sybils) * numbers_each + per_number - 1) // per_number):
        number, t0 = _numbers(rng, 1, "+86137")[0], begin + k * 2 * HOUR
        for j, who in enumerate(rng.sample(honest, 8)):
            events.append((t0 + j * 30 * 60, 0, who, number))
        chosen = sorted(range(len(sybils)), key=lambda i: (tagged[i], i))[:per_number]
        for j, i in enumerate(chosen):
            tagged[i] += 1
            events.append((t0 + 5 * 60 + j * 10 * 60, 1, sybils[i], number))
    events.sort(key=lambda e: (e[0], e[1]))
    hour, third, last = begin, None, events[-1][0]
    pending = list(events)
    while pending or hour < last + 3 * DAY:
        while pending and pending[0][0] < hour + HOUR:
            at, _, who, number = pending.pop(0)
            world.now = at
            world.tag(who, number, "fraud")
        hour += HOUR  # the hourly trust review
        world.now = hour
        world.review(sybils)
        have = sum(1 for st in world.standing(sybils) if st >= min_standing)
        if third is None and have >= 3:
            third = hour
        if not pending and have == len(sybils):
            break
    return third


def _attack(world: World, team: list[User], target: str, spacing: float = 30 * 60) -> int | None:
    """The team tags `target` one by one: how many it takes to block it (None: not all of them)."""
    for i, who in enumerate(team):
        world.now += spacing
        world.tag(who, target, "fraud")
        if world.verdict(target)["verdict"] == "block":
            return i + 1
    return None


def patient_sybils(redis_url: str | None, seed: int, team: int = 6, wait_days: float = 7.0) -> dict:
    """Sybils (each on its own /24) wait past the fresh window, farm standing by tagging real
    spam numbers early (see _farm), then attack a legitimate number nobody talks with. Then:
    does the trust review undo it, what do the owner's dispute and the operator's override do,
    and can the same attackers block a second number after that? Beside it, the same farm by
    fresh sybils that do not wait, and sybils that farm on numbers of their own."""
    world = World(redis_url, seed)
    min_standing = world.store.config.standing_min_numbers
    honest = _honest_standing(world, 40)
    sybils = [world.device(created=START) for _ in range(team)]
    third = _farm(world, honest, sybils, _hour_start(START + wait_days * DAY), per_number=2, numbers_each=2)
    target, second = "+8613912345673", "+8613912345674"
    ranked = [s for s, st in zip(sybils, world.standing(sybils)) if st >= min_standing]
    needed = _attack(world, ranked, target)
    blocked_at = world.now
    attackers = ranked[:needed or 0]
    for _ in range(3 * 24):  # three days of the scheduler's hourly review
        world.now += HOUR
        world.review(sybils)
    after_reviews = world.verdict(target)["verdict"]
    dispute = moderation.open_dispute(world.store, target, "this is my shop's number", "owner@example.com")
    after_dispute = world.verdict(target)["verdict"]
    moderation.resolve_dispute(world.store, dispute["dispute_id"], "allow", "the owner's shop", "operator")
    after_override = world.verdict(target)["verdict"]
    world.now += DAY + HOUR  # the attackers' next review (a day after the last)
    world.review(sybils)
    again = _attack(world, attackers, second)
    return {
        "sybils": team, "wait_days": wait_days,
        "days_to_standing": None if third is None else round((third - START) / DAY, 2),
        "sybils_with_standing": len(ranked), "sybils_to_block": needed,
        "days_to_block": None if needed is None else round((blocked_at - START) / DAY, 2),
        "verdict_after_3_days_of_reviews": after_reviews, "verdict_after_dispute": after_dispute,
        "verdict_after_override": after_override,
        "attackers_weights_after_override": world.weights(attackers),
        "attackers_standing_after_override": world.standing(attackers),
        "same_attackers_block_a_second_number": again is not None,
        "eager": _eager_farm(redis_url, seed, team), "self_farm": self_farm(redis_url, seed),
    }


def _attack_when_ranked(world: World, sybils: list[User], target: str) -> tuple[int | None, int]:
    """Once the sybils are past the fresh window, those with standing attack `target`: how
    many it takes, and how many had standing."""
    config = world.store.config
    world.now = max(world.now, START + config.fresh_device_days * DAY) + HOUR
    world.review(sybils)
    ranked = [s for s, st in zip(sybils, world.standing(sybils)) if st >= config.standing_min_numbers]
    return _attack(world, ranked, target), len(ranked)


def _eager_farm(redis_url: str | None, seed: int, team: int) -> dict:
    """The farm of patient_sybils by fresh sybils that start at once, and attack as soon as
    their standing counts."""
    world = World(redis_url, seed)
    honest = _honest_standing(world, 40)
    sybils = [world.device(created=START) for _ in range(team)]
    third = _farm(world, honest, sybils, _hour_start(START + HOUR), per_number=2, numbers_each=2)
    needed, ranked = _attack_when_ranked(world, sybils, "+8613912345675")
    return {"days_to_standing": None if third is None else round((third - START) / DAY, 2),
            "sybils_with_standing": ranked, "sybils_to_block": needed,
            "days_to_block": None if needed is None else round((world.now - START) / DAY, 2)}


def self_farm(redis_url: str | None, seed: int, team: int = 22) -> dict:
    """Fresh sybils on `team` /24s farm standing without any real spam: they block two numbers
    of their own (20 tags in one hour, 3 minutes apart, so no burst; the rest the next hour),
    then, as soon as their standing counts, attack a legitimate number."""
    world = World(redis_url, seed)
    sybils = [world.device(created=START) for _ in range(team)]
    for k in range(world.store.config.standing_min_numbers):
        own = _numbers(world.random, 1, "+86135")[0]
        for i, who in enumerate(sybils):
            world.now = _hour_start(START) + (2 * k + 1) * HOUR + (i * 3 * 60 if i < 20 else HOUR + (i - 20) * 3 * 60)
            world.tag(who, own, "fraud")
    for _ in range(24):  # the scheduler's hourly review
        world.now += HOUR
        world.review(sybils)
    needed, ranked = _attack_when_ranked(world, sybils, "+8613912345676")
    return {"sybils": team, "sybils_with_standing": ranked, "sybils_to_block": needed,
            "days_to_block": None if needed is None else round((world.now - START) / DAY, 2)}


def dispute_abuse(redis_url: str | None, seed: int) -> dict:
    """A number blocked by 10 aged reporters on 10 networks; a fresh device disputes it through
    the HTTP route of a production app."""
    world = World(redis_url, seed)
    target = "+8613912345677"
    for i in range(10):
        world.now = START + i * 30 * 60
        world.tag(world.device(created=world.now - 30 * DAY), target, "fraud")
    before = world.verdict(target)["verdict"]
    client = world.app.test_client()
    environ = {"REMOTE_ADDR": world.address()}
    token = client.post("/v1/devices", environ_base=environ).get_json()["token"]
    answer = client.post("/v1/disputes", json={"number": target, "reason": "not spam", "contact": "someone@example.com"},
                         headers={"Authorization": f"Bearer {token}"}, environ_base=environ)
    after = world.verdict(target)
    world.now += HOUR
    world.review()
    return {"verdict_before": before, "dispute_status": answer.status_code, "disputed": after["disputed"],
            "verdict_after": after["verdict"], "verdict_after_review": world.verdict(target)["verdict"],
            "goal": "stays block", "met": before == "block" and after["verdict"] == "block"}


def scenarios(redis_url: str | None, seed: int, sizes: Sizes) -> dict:
    return {
        "fresh_sybils": fresh_sybils(redis_url, seed),
        "aged_sybils": aged_sybils(redis_url, seed),
        "retag": retag(redis_url, seed),
        "detector_abuse": detector_abuse(redis_url, seed),
        "batch_amplification": batch_amplification(redis_url, seed, sizes.batches),
        "patient_sybils": patient_sybils(redis_url, seed),
        "dispute_abuse": dispute_abuse(redis_url, seed),
    }


# --- the FTC replay -----------------------------------------------------------------------

FTC_SETTINGS = [
    ("defaults (3 reporters, score >= 1.5, 90-day half-life)", {}),
    ("2 reporters", {"block_min_reporters": 2}),
    ("5 reporters", {"block_min_reporters": 5}),
    ("3 reporters, 30-day half-life", {"half_life_days": 30.0}),
]


def replay_ftc(redis_url: str | None, folder: str) -> list[tuple[str, int, int]]:
    """Import the FTC daily files under each setting: (setting, numbers, blocked)."""
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith("dnc-reported-calls"))
    out = []
    for label, overrides in FTC_SETTINGS:
        app = create_app(production_config(redis_url, **overrides))
        store = app.extensions["callmark"]
        store.redis.flushdb()
        importer.import_ftc(store, files, dated_now=True)
        states = [int(v or 0) for v in _states(store)]
        out.append((label, len(states), sum(1 for s in states if s // reputation.STATE_LABELS == reputation.VERDICTS.index("block"))))
    return out


def _states(store) -> list:
    pipe = store.redis.pipeline(transaction=False)
    keys = list(store.redis.scan_iter(store.keys.number_pattern(), count=10_000))
    for key in keys:
        pipe.hget(key, "v")
    return pipe.execute() if keys else []


def run(quick: bool, redis_url: str | None = None, seed: int = 7) -> dict:
    sizes = QUICK if quick else FULL
    timings = {}
    began = time.monotonic()
    result = honest_world(sizes, redis_url, seed, progress=not quick)
    timings["honest_world"] = time.monotonic() - began
    began = time.monotonic()
    result["launch_day"] = launch_day(sizes, redis_url, seed, progress=not quick)
    timings["launch_day"] = time.monotonic() - began
    began = time.monotonic()
    result["fresh_burst"] = {k: grief_fresh_burst(redis_url, seed, k) for k in (5, 10, 20, 50)}
    result["attackers_to_block_by_talkers"] = {t: grief_aged_spread(redis_url, seed, t)
                                               for t in ((0, 50, 200) if quick else (0, 50, 200, 1000))}
    result["scenarios"] = scenarios(redis_url, seed, sizes)
    timings["scenarios"] = time.monotonic() - began
    result["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    return result


def _show(key: str, value, indent: str = "") -> None:
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        print(f"{indent}{key}:")
        for k, v in value.items():
            _show(k, v, indent + "  ")
    else:
        print(f"{indent}{key}: {value:.4f}" if isinstance(value, float) else f"{indent}{key}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller world; a few minutes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ftc", action="store_true", help="also replay ../shared/data/ftc under several settings")
    args = parser.parse_args()
    from common import machine, private_redis

    print(f"machine: {machine()}")
    with private_redis() as url:
        result = run(args.quick, url, args.seed)
        for key, value in result.items():
            _show(key, value)
        if args.ftc:
            folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                                  "data", "ftc")
            for label, numbers, blocked in replay_ftc(url, folder):
                print(f"ftc replay, {label}: {numbers:,} numbers, {blocked:,} blocked ({blocked / numbers:.2%})")


if __name__ == "__main__":
    main()
