"""Statistics for operators and regulators (`GET /v1/stats`, the /admin page).

Reports per day and per tag come from per-bucket daily counters that the report script
keeps (a vote that counts: new or changed, never a duplicate), so a period's figures cost
one small hash per bucket and day, not a scan. The shares of each tag over a period are the
figures the 12321 centre publishes ("loans 30.9 %, debt collection 21.0 %, ...").
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from . import moderation, reputation, tags
from .errors import ValidationFailed
from .lists import PUBLISHED
from .store import STATS_DAYS, Store

DEFAULT_DAYS = 30
TOP_NUMBERS = 20


def period(raw_from: str | None, raw_to: str | None, today: date, max_days: int = STATS_DAYS) -> tuple[date, date]:
    """The inclusive period asked for: YYYY-MM-DD dates, by default the last 30 days, at most
    `max_days` long."""
    try:
        end = date.fromisoformat(raw_to) if raw_to else today
        start = date.fromisoformat(raw_from) if raw_from else end - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise ValidationFailed("from and to are dates: YYYY-MM-DD", {"from": raw_from, "to": raw_to}) from None
    if start > end:
        raise ValidationFailed("from must not be after to", {"from": start.isoformat(), "to": end.isoformat()})
    if (end - start).days >= max_days:
        raise ValidationFailed(f"a period is at most {max_days} days", {"days": (end - start).days + 1})
    return start, end


def daily(store: Store, start: date, end: date) -> tuple[list[dict[str, Any]], list[int]]:
    """Reports per day of the period, and per tag index over the whole period."""
    epoch = date(1970, 1, 1)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    pipe = store.redis.pipeline(transaction=False)
    for day in days:
        for bucket in range(store.config.buckets):
            pipe.hgetall(store.keys.daily_stats(bucket, (day - epoch).days))
    replies = iter(pipe.execute())
    per_day, per_tag = [], [0] * len(tags.TAXONOMY)
    for day in days:
        total = 0
        for _ in range(store.config.buckets):
            counts = next(replies)
            total += int(counts.get("n", 0))
            for name, value in counts.items():
                if name.startswith("t"):
                    per_tag[int(name[1:])] += int(value)
        per_day.append({"date": day.isoformat(), "reports": total})
    return per_day, per_tag


def most_reported(store: Store, limit: int = TOP_NUMBERS) -> list[dict[str, Any]]:
    """The numbers with the most reporters now, with their verdicts."""
    pipe = store.redis.pipeline(transaction=False)
    for bucket in range(store.config.buckets):
        pipe.zrevrange(store.keys.most_reported(bucket), 0, limit - 1, withscores=True)
    ranked = sorted((entry for entries in pipe.execute() for entry in entries), key=lambda e: (-e[1], e[0]))[:limit]
    reps = reputation.lookup_many(store, [number for number, _ in ranked])
    return [{"number": r["number"], "reporters": r["reporters"], "verdict": r["verdict"], "label": r["label"]}
            for r in reps]


def lists_now(store: Store) -> list[dict[str, Any]]:
    pipe = store.redis.pipeline(transaction=False)
    for name in PUBLISHED:
        pipe.hmget(store.keys.list_state(name), "version", "count", "published_at")
    return [{"name": name, "version": int(v) if v else None, "count": int(c or 0),
             "published_at": reputation.iso_unix(int(float(at))) if at else None}
            for name, (v, c, at) in zip(PUBLISHED, pipe.execute())]


def recent_publishes(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    return [{"list": f["list"], "version": int(f["version"]), "count": int(f["count"]), "added": int(f["added"]),
             "removed": int(f["removed"]), "seconds": float(f["seconds"]), "at": reputation.iso_unix(int(f["at"]))}
            for _, f in store.redis.xrevrange(store.keys.publishes(), count=limit)]


def summary(store: Store, raw_from: str | None = None, raw_to: str | None = None) -> dict[str, Any]:
    """Everything `GET /v1/stats` answers."""
    today = datetime.fromtimestamp(store.clock(), tz=timezone.utc).date()
    start, end = period(raw_from, raw_to, today)
    per_day, per_tag = daily(store, start, end)
    total = sum(per_tag)
    shares = sorted(({"tag": t.code, "name_en": t.name_en, "name_zh": t.name_zh, "reports": per_tag[i],
                      "share": round(per_tag[i] / total, 4) if total else 0.0}
                     for i, t in enumerate(tags.TAXONOMY) if per_tag[i]), key=lambda s: -s["reports"])
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "reports": total,
        "reports_per_day": per_day,
        "tag_shares": shares,
        "top_numbers": most_reported(store),
        "lists": lists_now(store),
        "recent_publishes": recent_publishes(store),
        "open_disputes": moderation.open_disputes(store),
        "overrides": [e for e in moderation.audit_log(store, None, 100) if e["action"].startswith("override")][:20],
    }
