"""Simulate a day of CallMark under the production profile and measure the reputation model.

A seeded population drives the real code path (reports.submit, calls.record, trust.review,
the Lua scripts) against a real Redis with an injected clock:

- legitimate numbers, a few of them popular hotlines (delivery, customer service) that
  many users are called by; honest users give them informational tags now and then, and
  mistaken spam tags at MISTAKE_RATE of all their tags;
- spammers that call many users an hour, some rotating through consecutive numbers;
  honest users tag a spam call with probability TAG_PROBABILITY;
- ring-once operators whose calls ring a second and stop; legitimate calls are answered
  or ring long, and phones report call events for both;
- attackers griefing legitimate numbers that honest users call and never tag: fresh
  devices registered in a burst on one network, and aged devices on distinct networks
  against numbers that 0 to 1,000 people have talked with.

Prints precision, recall, reports-to-block, hours-to-block, false blocks, the griefing
results and the ring-once results; `--ftc` also replays the FTC files in ../shared/data/ftc
under several settings. `run(quick=True)` is what tests/test_simulation.py asserts on.

    python bench/simulate.py [--quick] [--seed N] [--ftc]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from blocklist import calls, create_app, devices, importer, lists, reports, reputation, trust  # noqa: E402
from blocklist.config import Config  # noqa: E402

HOUR = 3600
START = 1_790_000_000  # a fixed unix time (2026-09-21) so every run is the same
TAG_PROBABILITY = 0.3  # an honest user tags a spam call with this probability
MISTAKE_RATE = 0.03  # share of honest users' tags that land on a legitimate number
INFO_TAG_PROBABILITY = 0.02  # a call from a hotline gets its informational tag
SPAM_ANSWERED = 0.5  # spam calls answered
SPAM_TALKED = 0.2  # answered spam calls that last a minute or more (a telemarketer's pitch)
SPAM_TAGS = ("loan", "real_estate", "fraud", "insurance", "education", "telemarketing")


@dataclass
class Sizes:
    users: int
    legit: int
    popular: int
    spammers: int
    rotating: int  # of the spammers, those that move to the next number every few hours
    ring_once: int
    spam_calls_per_hour: int
    hours: int


QUICK = Sizes(users=1500, legit=1000, popular=10, spammers=60, rotating=12, ring_once=8,
              spam_calls_per_hour=8, hours=24)
FULL = Sizes(users=6000, legit=5000, popular=50, spammers=300, rotating=60, ring_once=30,
             spam_calls_per_hour=12, hours=48)


@dataclass
class Caller:
    number: str
    tag: str
    first_report: float | None = None
    reports: int = 0
    blocked_at: float | None = None
    reports_to_block: int | None = None
    numbers_used: list[str] = field(default_factory=list)


def guarded_config(redis_url: str | None, **settings) -> Config:
    """The production profile's reputation defaults (distinct networks, burst guard), without
    its deployment requirements (signing key, rate limits): the simulation calls no route."""
    return Config(redis_url=redis_url, profile="development", distinct_networks=True, burst_guard=True,
                  secret_key="simulation-secret-0123456789abcdefghij", data_dir=tempfile.mkdtemp(prefix="cm-sim-"),
                  sweep_interval=0, publish_interval=0, **settings)


class World:
    def __init__(self, redis_url: str | None, seed: int):
        self.now = float(START)
        self.random = random.Random(seed)
        self.app = create_app(guarded_config(redis_url, clock=lambda: self.now))
        self.store = self.app.extensions["callmark"]
        self.store.redis.flushdb()
        self.networks = 0

    def address(self, network: int | None = None) -> str:
        """An address on a given network, or on a new one: 10.x.y.z with the /24 as network."""
        if network is None:
            self.networks += 1
            network = self.networks
        return f"10.{network // 256 % 256}.{network % 256}.{self.random.randint(1, 254)}"

    def device(self, address: str, age_days: float) -> tuple[devices.Device, str]:
        self.now -= age_days * 86400
        device_id, token = devices.register(self.store, address)
        self.now += age_days * 86400
        return devices.authenticate(self.store, token), address

    def tag(self, who: tuple[devices.Device, str], number: str, tag: str) -> None:
        reports.submit(self.store, who[0], who[1], {"number": number, "tag": tag})

    def verdict(self, number: str) -> dict:
        return reputation.lookup(self.store, number)


def _numbers(rng: random.Random, count: int, prefix: str) -> list[str]:
    return [f"{prefix}{rng.randrange(10**8):08d}" for _ in range(count)]


def simulate(sizes: Sizes, redis_url: str | None, seed: int, progress: bool = False) -> dict:
    world = World(redis_url, seed)
    rng, store = world.random, world.store
    users = [world.device(world.address(), age_days=rng.uniform(30, 400)) for _ in range(sizes.users)]
    legit = _numbers(rng, sizes.legit, "+86139")
    popular = set(legit[:sizes.popular])
    legit_kind = {n: ("delivery" if i % 2 else "customer_service") for i, n in enumerate(legit)}
    spammers = [Caller(n, rng.choice(SPAM_TAGS)) for n in _numbers(rng, sizes.spammers, "+86137")]
    for caller in spammers[:sizes.rotating]:  # rotating operators start at the top of a block of 100
        caller.number = caller.number[:-2] + "00"
    ring_once = [Caller(n, "ring_once") for n in _numbers(rng, sizes.ring_once, "+86136")]
    for caller in spammers + ring_once:
        caller.numbers_used.append(caller.number)

    honest_tags = mistakes = 0
    ring_flag_hours: list[float] = []
    for hour in range(sizes.hours):
        world.now = START + hour * HOUR
        for caller in spammers:
            if caller in spammers[:sizes.rotating] and hour and hour % 3 == 0:
                caller.number = f"{caller.number[:-2]}{int(caller.number[-2:]) + 1:02d}"  # the next number
                caller.numbers_used.append(caller.number)
            for user in rng.sample(users, sizes.spam_calls_per_hour):
                world.now = START + hour * HOUR + rng.uniform(0, HOUR - 1)
                answered = rng.random() < SPAM_ANSWERED
                talked = rng.uniform(60, 180) if rng.random() < SPAM_TALKED else rng.uniform(2, 30)
                calls.record(store, user[0], user[1], {"number": caller.number, "answered": answered,
                                                       "ring_seconds": rng.uniform(3, 20), "direction": "incoming",
                                                       "duration_seconds": talked if answered else 0})
                if rng.random() < TAG_PROBABILITY:
                    world.tag(user, caller.number, caller.tag)
                    honest_tags += 1
                    _count_report(world, caller)
        for caller in ring_once:
            for user in rng.sample(users, sizes.spam_calls_per_hour):
                world.now = START + hour * HOUR + rng.uniform(0, HOUR - 1)
                result = calls.record(store, user[0], user[1], {"number": caller.number, "answered": False,
                                                                "ring_seconds": rng.uniform(0.5, 2.0),
                                                                "direction": "incoming"})
                if result["ring_once"] and caller.blocked_at is None:
                    caller.blocked_at = world.now
                    ring_flag_hours.append(hour)
        # Legitimate calls: popular hotlines call many users, the rest a few; most are answered.
        mistakes_due = MISTAKE_RATE / (1 - MISTAKE_RATE) * honest_tags - mistakes
        legit_calls = [(n, 30 if n in popular else 1) for n in legit if n in popular or rng.random() < 0.2]
        total_calls = sum(c for _, c in legit_calls)
        for number, count in legit_calls:
            for user in rng.sample(users, count):
                world.now = START + hour * HOUR + rng.uniform(0, HOUR - 1)
                answered = rng.random() < 0.8
                calls.record(store, user[0], user[1], {"number": number, "answered": answered,
                                                       "ring_seconds": rng.uniform(4, 25), "direction": "incoming",
                                                       "duration_seconds": rng.uniform(20, 600) if answered else 0})
                if rng.random() < INFO_TAG_PROBABILITY and number in popular:
                    world.tag(user, number, legit_kind[number])
                elif rng.random() < mistakes_due / max(1, total_calls):
                    world.tag(user, number, rng.choice(SPAM_TAGS))
                    mistakes += 1
        trust.review(store, limit=10_000)
        if progress:
            print(f"simulated hour {hour + 1} of {sizes.hours}", file=sys.stderr, flush=True)

    world.now = START + sizes.hours * HOUR
    verdicts = {n: world.verdict(n)["verdict"] for n in legit}
    falsely_blocked = [n for n, v in verdicts.items() if v == "block"]
    reported = [c for c in spammers if c.first_report is not None]
    within_day = [c for c in reported if c.blocked_at is not None and c.blocked_at - c.first_report <= 86400]
    blocked_spam = [c for c in spammers if c.blocked_at is not None]
    blocked_numbers = [n for c in spammers for n in c.numbers_used if world.verdict(n)["verdict"] == "block"]
    ranges = lists.ranges(blocked_numbers)
    # a rotating operator's block is covered when the range list holds its block of 10 or of 100
    covered = [c for c in spammers[:sizes.rotating] if set(lists.block_keys(c.numbers_used[0])) & ranges]
    answered_flags = [n for n in legit if "ring_once" in world.verdict(n)["detected"]]
    return {
        "users": sizes.users, "legit": sizes.legit, "spammers": sizes.spammers, "hours": sizes.hours,
        "honest_tags": honest_tags, "mistaken_tags": mistakes,
        "mistake_share": mistakes / max(1, honest_tags + mistakes),
        "precision": len(blocked_spam) / max(1, len(blocked_spam) + len(falsely_blocked)),
        "recall_within_day": len(within_day) / max(1, len(reported)),
        "median_reports_to_block": statistics.median([c.reports_to_block for c in blocked_spam] or [0]),
        "median_hours_to_block": statistics.median([(c.blocked_at - c.first_report) / HOUR
                                                    for c in blocked_spam] or [0]),
        "false_blocks": len(falsely_blocked), "falsely_blocked": [world.verdict(n) for n in falsely_blocked], "false_block_rate": len(falsely_blocked) / sizes.legit,
        "rotating_operators_in_ranges": len(covered), "rotating_operators": sizes.rotating,
        "ring_once_flagged": sum(1 for c in ring_once if c.blocked_at is not None), "ring_once": len(ring_once),
        "ring_once_median_flag_hour": statistics.median(ring_flag_hours or [0]),
        "answered_numbers_flagged": len(answered_flags),
    }


def _count_report(world: World, caller: Caller) -> None:
    if caller.first_report is None:
        caller.first_report = world.now
    caller.reports += 1
    if caller.blocked_at is None and world.verdict(caller.number)["verdict"] == "block":
        caller.blocked_at, caller.reports_to_block = world.now, caller.reports


def grief_fresh_burst(redis_url: str | None, seed: int, attackers: int) -> str:
    """`attackers` devices registered within minutes on one network tag one legitimate number."""
    world = World(redis_url, seed)
    target = "+8613912345678"
    network = 9_999
    for i in range(attackers):
        world.now = START + i * 20
        who = world.device(world.address(network), age_days=0)
        world.tag(who, target, "fraud")
    world.now = START + HOUR
    trust.review(world.store)
    return world.verdict(target)["verdict"]


def grief_aged_spread(redis_url: str | None, seed: int, talkers: int, days: int = 14, most: int = 40) -> int | None:
    """How many aged devices, each on its own network and tagging once (spread over `days`),
    it takes to block a legitimate number that `talkers` honest users talked with and never
    tagged; None if `most` do not."""
    world = World(redis_url, seed)
    target = "+8613912345679"
    for _ in range(talkers):  # conversations over the weeks before the attack
        who = world.device(world.address(), age_days=60)
        calls.record(world.store, who[0], who[1], {"number": target, "answered": True, "ring_seconds": 5,
                                                   "duration_seconds": 180, "direction": "outgoing"})
    team = [world.device(world.address(), age_days=60) for _ in range(most)]
    for i, who in enumerate(team):
        world.now = START + (i * days * 86400) // most
        world.tag(who, target, "fraud")
        if world.verdict(target)["verdict"] == "block":
            return i + 1
    return None


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
        app = create_app(guarded_config(redis_url, **overrides))
        store = app.extensions["callmark"]
        store.redis.flushdb()
        importer.import_ftc(store, files, dated_now=True)
        states = [int(v or 0) for v in _states(store)]
        out.append((label, len(states), sum(1 for s in states if s // 64 == 3)))
    return out


def _states(store) -> list:
    pipe = store.redis.pipeline(transaction=False)
    keys = list(store.redis.scan_iter(store.keys.number_pattern(), count=10_000))
    for key in keys:
        pipe.hget(key, "v")
    return pipe.execute() if keys else []


def run(quick: bool, redis_url: str | None = None, seed: int = 7) -> dict:
    sizes = QUICK if quick else FULL
    result = simulate(sizes, redis_url, seed, progress=not quick)
    result["fresh_burst"] = {k: grief_fresh_burst(redis_url, seed, k) for k in (5, 10, 20, 50)}
    result["attackers_to_block_by_talkers"] = {t: grief_aged_spread(redis_url, seed, t)
                                               for t in ((0, 50, 200) if quick else (0, 50, 200, 1000))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller world; under a minute")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ftc", action="store_true", help="also replay ../shared/data/ftc under several settings")
    args = parser.parse_args()
    from common import machine, private_redis

    print(f"machine: {machine()}")
    with private_redis() as url:
        result = run(args.quick, url, args.seed)
        for key, value in result.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
        if args.ftc:
            folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                                  "data", "ftc")
            for label, numbers, blocked in replay_ftc(url, folder):
                print(f"ftc replay, {label}: {numbers:,} numbers, {blocked:,} blocked ({blocked / numbers:.2%})")


if __name__ == "__main__":
    main()
