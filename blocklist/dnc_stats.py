"""Do-Not-Call statistics: how many people register, what they refuse, how much is scrubbed and
how often a registration is broken (`GET /v1/dnc/stats`, the /admin page, the public monthly
report).

Only counts are kept, never a number: per-day hashes of events (registrations new, renewed,
moved, updated, removed and expired, by region too; scrubs, numbers scrubbed and callable;
violations by category), kept STATS_DAYS, and the live counts (registrations, accept windows,
each refused category, each region). A registration expires without any event, so when it is
counted it is also counted in the hash of the day it will expire; once that day is over its
counts are subtracted from the live ones (`settle`, on reading). A change cancels the old
record's expiry and counts the new one's. The counters change in the round trip right after
the event's own atomic write (on a cluster the statistics have their own slot, so they cannot
share the registration's script): pipelined HINCRBYs, or for a registration's thirty-odd
fields one script (lua/dnc_stats_add.lua). See docs/STORAGE.md.
"""
from __future__ import annotations

from calendar import monthrange
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional

from . import stats, tags
from .errors import ValidationFailed
from .store import STATS_DAYS, Store
from .tags import MARKETING

if TYPE_CHECKING:  # dnc imports this module: only its types are needed here
    from redis.client import Pipeline

    from .dnc import Record

EPOCH_DAY = date(1970, 1, 1)
KEEP_SECONDS = STATS_DAYS * 86400  # a day's counts are kept as long as the report statistics
NON_GEOGRAPHIC = "001"  # the region of a number of no country (phonenumbers' name for it)
SUPPRESS_BELOW = 10  # a public count under this is withheld (null; "<10" in text)
SUPPRESSED_TEXT = f"<{SUPPRESS_BELOW}"
REGISTRATION_EVENTS = ("new", "renewed", "moved", "updated", "removed", "expired")


def day_of(at: float) -> int:
    """The UTC day (days since 1970) of a unix time."""
    return int(at // 86400)


def _day_number(day: int | date) -> int:
    return (day - EPOCH_DAY).days if isinstance(day, date) else int(day)


def _run(store: Store, pipe: Optional["Pipeline"], fill) -> None:
    """Queue `fill(pipe)` on the caller's pipeline, or run it in a round trip of its own."""
    if pipe is not None:
        fill(pipe)
    else:
        store.pipelined(fill)


def _count_day(store: Store, pipe: "Pipeline", day: int, counts: dict[str, int]) -> None:
    key = store.keys.dnc_stats_day(day)
    for field, value in counts.items():
        if value:
            pipe.hincrby(key, field, value)
    pipe.expire(key, KEEP_SECONDS)


# --- counting: called by blocklist/dnc.py and blocklist/violations.py -------------------------

def note_violation(store: Store, pipe: Optional["Pipeline"], category: str, day: int | date) -> None:
    """Count one Do-Not-Call violation of `category` (a marketing tag) on `day` (days since
    1970, or a date): on `pipe` when given (the caller runs it), else at once."""
    _run(store, pipe, lambda p: _count_day(store, p, _day_number(day), {f"v:{category}": 1}))


def note_scrub(store: Store, pipe: Optional["Pipeline"], at: float, count: int, callable_count: int) -> None:
    """Count one scrub at `at` of `count` numbers, `callable_count` of them callable."""
    _run(store, pipe, lambda p: _count_day(store, p, day_of(at), {
        "scrubs": 1, "scrubbed": count, "callable": callable_count}))


def _region(record: "Record") -> str:
    return record.region or NON_GEOGRAPHIC


def _weight(record: "Record") -> Counter:
    """What one live registration adds to the live counts."""
    weight = Counter({"n": 1, f"region:{_region(record)}": 1})
    if record.has_windows:
        weight["windows"] = 1
    for code in record.refused_categories():
        weight[f"refuse:{code}"] = 1
    return weight


def _change(store: Store, old: Optional["Record"], new: Optional["Record"], event: str) -> None:
    """Move the live counts from `old` (a live registration, or None) to `new` (or None), move
    their expiry days' counts the same way and count `event` today, in one round trip."""
    now = store.clock()
    today = day_of(now)
    live = Counter()
    expiring: dict[int, Counter] = {}
    if old is not None:
        live.subtract(_weight(old))
        expiring.setdefault(day_of(old.expires(store)), Counter()).subtract(_weight(old))
    if new is not None:
        live.update(_weight(new))
        expiring.setdefault(day_of(new.expires(store)), Counter()).update(_weight(new))
    record = new if new is not None else old
    events = {event: 1}
    if event in ("new", "removed") and record is not None:
        events[f"{event}:{_region(record)}"] = 1

    keys = store.keys
    changes = [(keys.dnc_stats_live(), 0, live), (keys.dnc_stats_day(today), KEEP_SECONDS, events),
               *((keys.dnc_stats_expiring(day), 0, counts) for day, counts in expiring.items())]
    args: list = []
    for _, ttl, counts in changes:
        fields = [(field, value) for field, value in counts.items() if value]
        args += [ttl, len(fields), *(part for pair in fields for part in pair)]
    add = store.script("blocklist", "dnc_stats_add.lua")
    store.pipelined(lambda pipe: [
        store.evalsha(pipe, add, [key for key, _, _ in changes], args),
        pipe.set(keys.dnc_stats_settled(), today - 1, nx=True)])  # nothing counted has expired before today


def registered(store: Store, old: Optional["Record"], new: "Record") -> None:
    """A registration written over `old` (its live record, None when there was none or it had
    expired): new, renewed (the same device verified it again) or moved (another device)."""
    event = "new" if old is None else "renewed" if old.device == new.device else "moved"
    _change(store, old, new, event)


def updated(store: Store, old: "Record", new: "Record") -> None:
    """A registration's preferences changed."""
    _change(store, old, new, "updated")


def removed(store: Store, old: "Record") -> None:
    """A registration deleted (by its device, or with it); one that had expired is counted
    already, by its expiry."""
    if old.live(store, store.clock()):
        _change(store, old, None, "removed")


# --- settling expiries -------------------------------------------------------------------------

def settle(store: Store) -> None:
    """Subtract from the live counts the registrations that expired on the days now over, and
    count them as those days' `expired`; once per day, in one transaction (a concurrent
    settler's transaction fails on the watched marker and finds nothing left to do)."""
    keys, today = store.keys, day_of(store.clock())

    def step(pipe) -> None:
        last = pipe.get(keys.dnc_stats_settled())
        if last is not None and int(last) >= today - 1:
            return
        days = list(range(int(last) + 1, today)) if last is not None else []
        expiring = store.pipelined(lambda p: [p.hgetall(keys.dnc_stats_expiring(day)) for day in days]) \
            if days else []
        pipe.multi()
        for day, counts in zip(days, expiring):
            if not counts:
                continue
            for field, value in counts.items():
                if int(value):
                    pipe.hincrby(keys.dnc_stats_live(), field, -int(value))
            expired = {"expired": int(counts.get("n", 0))}
            expired.update({f"expired:{field[7:]}": int(value) for field, value in counts.items()
                            if field.startswith("region:")})
            _count_day(store, pipe, day, expired)
            pipe.delete(keys.dnc_stats_expiring(day))
        pipe.set(keys.dnc_stats_settled(), today - 1)

    store.redis.transaction(step, keys.dnc_stats_settled())


# --- reading -----------------------------------------------------------------------------------

def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def share(part: int | None, whole: int | None) -> float | None:
    """part / whole to four places; None unless both are published."""
    if part is None or whole is None:
        return None
    return round(part / whole, 4) if whole else 0.0


def figures(store: Store, start: date, end: date) -> dict[str, Any]:
    """The figures of the inclusive period, exact (for operators)."""
    settle(store)
    days = _days(start, end)
    replies = store.pipelined(lambda pipe: [pipe.hgetall(store.keys.dnc_stats_live())] + [
        pipe.hgetall(store.keys.dnc_stats_day(_day_number(day))) for day in days])
    live = {field: int(value) for field, value in replies[0].items()}
    per_day, period = [], Counter()
    for day, counts in zip(days, replies[1:]):
        counts = {field: int(value) for field, value in counts.items()}
        period.update(counts)
        per_day.append({"date": day.isoformat(), **{event: counts.get(event, 0) for event in REGISTRATION_EVENTS},
                        "scrubs": counts.get("scrubs", 0), "numbers_scrubbed": counts.get("scrubbed", 0),
                        "callable": counts.get("callable", 0),
                        "violations": sum(v for f, v in counts.items() if f.startswith("v:"))})
    total = max(live.get("n", 0), 0)
    regions = sorted({f.split(":", 1)[1] for f in [*live, *period] if f.startswith(("region:", "new:", "removed:",
                                                                                      "expired:"))})
    by_region = sorted(({"region": region, "registrations": max(live.get(f"region:{region}", 0), 0),
                         "new": period.get(f"new:{region}", 0), "removed": period.get(f"removed:{region}", 0),
                         "expired": period.get(f"expired:{region}", 0)} for region in regions),
                       key=lambda row: (-row["registrations"], -row["new"], row["region"]))
    refusals = [{"category": code, "name_en": tags.BY_CODE[code].name_en, "name_zh": tags.BY_CODE[code].name_zh,
                 "registrations": max(live.get(f"refuse:{code}", 0), 0),
                 "share": share(max(live.get(f"refuse:{code}", 0), 0), total)} for code in MARKETING]
    windows = max(live.get("windows", 0), 0)
    categories = list(MARKETING) + sorted({f[2:] for f in period if f.startswith("v:")} - set(MARKETING))
    violations = [{"category": code, "violations": period.get(f"v:{code}", 0)} for code in categories]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "registrations": total,
        "new": period.get("new", 0),
        "removed": period.get("removed", 0),
        "expired": period.get("expired", 0),
        "per_day": per_day,
        "by_region": by_region,
        "refusals": refusals,
        "accept_windows": {"registrations": windows, "share": share(windows, total)},
        "scrubs": period.get("scrubs", 0),
        "numbers_scrubbed": period.get("scrubbed", 0),
        "callable": period.get("callable", 0),
        "callable_share": share(period.get("callable", 0), period.get("scrubbed", 0)),
        "violations": violations,
    }


def summary(store: Store, raw_from: str | None = None, raw_to: str | None = None) -> dict[str, Any]:
    """Everything `GET /v1/dnc/stats` answers; the period as `GET /v1/stats` takes it (checked
    before anything is written)."""
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    start, end = stats.period(raw_from, raw_to, today)
    return figures(store, start, end)


# --- the public report -------------------------------------------------------------------------

def suppress(count: int | None) -> int | None:
    """A count fit to publish: None when under SUPPRESS_BELOW (too few to hide who they are)."""
    return None if count is None or count < SUPPRESS_BELOW else count


def shown(count: int | None) -> str:
    """A published count as text: the number, or "<10" when withheld."""
    return SUPPRESSED_TEXT if count is None else f"{count:,}"


def month_start(text: str) -> date:
    """The first day of a `YYYY-MM` month; ValidationFailed otherwise."""
    try:
        first = date.fromisoformat(f"{text}-01") if len(text) == 7 else None
    except ValueError:
        first = None
    if first is None or not 1970 <= first.year <= 2999:
        raise ValidationFailed("a month is YYYY-MM, 1970 to 2999", {"month": text})
    return first


def public_summary(store: Store, month: str | date) -> dict[str, Any]:
    """The month's figures for the public report (`YYYY-MM`, or any date in it): every count
    under SUPPRESS_BELOW is None, and a share is given only where its count and its whole are
    both published. Regions under SUPPRESS_BELOW are pooled as "other" (itself withheld when
    under it); violation shares are of the published violation counts only, so a share never
    reveals a withheld count."""
    first = month_start(month) if isinstance(month, str) else month.replace(day=1)
    last = first.replace(day=monthrange(first.year, first.month)[1])
    exact = figures(store, first, last)
    total = suppress(exact["registrations"])
    regions, other = [], 0
    for row in exact["by_region"]:
        if suppress(row["registrations"]) is None:
            other += row["registrations"]
        else:
            regions.append({"region": row["region"], "registrations": row["registrations"]})
    if other:
        regions.append({"region": "other", "registrations": suppress(other)})
    for row in regions:
        row["share"] = share(row["registrations"], total)
    violations = [{"category": row["category"], "violations": suppress(row["violations"])}
                  for row in exact["violations"]]
    published = sum(row["violations"] or 0 for row in violations)
    for row in violations:
        row["share"] = share(row["violations"], published or None)
    windows = suppress(exact["accept_windows"]["registrations"])
    scrubbed, callable_ = suppress(exact["numbers_scrubbed"]), suppress(exact["callable"])
    return {
        "month": first.isoformat()[:7],
        "suppressed_below": SUPPRESS_BELOW,
        "registrations": total,
        "new": suppress(exact["new"]),
        "removed": suppress(exact["removed"]),
        "expired": suppress(exact["expired"]),
        "by_region": regions,
        "refusals": [{"category": row["category"], "name_en": row["name_en"], "name_zh": row["name_zh"],
                      "registrations": (count := suppress(row["registrations"])), "share": share(count, total)}
                     for row in exact["refusals"]],
        "accept_windows": {"registrations": windows, "share": share(windows, total)},
        "scrubs": suppress(exact["scrubs"]),
        "numbers_scrubbed": scrubbed,
        "callable": callable_,
        "callable_share": share(callable_, scrubbed),
        "violations": violations,
    }
