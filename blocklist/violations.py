"""Do-Not-Call violations (issue 12): a device's report of a marketing tag for a call to its
own registered number that the registration refuses.

The called number is the report's `called_number`; without it, the device's only
registration (a device with several cannot say which one rang). It is only hashed to find
the registration (blocklist/dnc.py `violated` decides the grace days, the accept windows in
the number's time zone and the consents by company) and is never stored. A violation is a
flag on the device's vote: lua/report.lua keeps it beside the vote (docs/STORAGE.md, `g<voter>`
and `k`), so it counts exactly while the vote does and never changes the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import dnc, dnc_stats, numbers, tags
from .store import Store


@dataclass(frozen=True, slots=True)
class Call:
    """The marketing call a report describes, as far as a violation needs it."""

    called: str | None  # E.164 of the device's number that rang; None: its only registration
    tag: str  # a marketing tag
    company: str | None  # who the report says called ("" and absent alike: no consent matches)
    at: float  # unix time the call rang: the report's call.at, never after now; else its receipt


def call_of(item: dict[str, Any], region: str, now: float) -> Call | None:
    """The call a validated report item describes; None when its tag is not marketing, so it
    cannot be a violation. InvalidNumber when its called_number is not a number."""
    if not tags.BY_CODE[item["tag"]].marketing:
        return None
    raw = item.get("called_number")
    called = numbers.normalize(raw, region) if raw is not None else None
    at = min(float((item.get("call") or {}).get("at", now)), now)
    return Call(called, item["tag"], item.get("company") or None, at)


def flags(store: Store, device_id: str, calls: list[Call | None]) -> list[bool]:
    """Which of a device's calls were violations (None: not a marketing call). One round trip
    for the device's registrations when a call does not name its number, two for the
    registrations that might be broken; none when no call is a marketing one."""
    out = [False] * len(calls)
    if not any(calls):
        return out
    only = None
    if any(call is not None and call.called is None for call in calls):
        mine = dnc.registrations_of(store, device_id)
        only = mine[0]["number"] if len(mine) == 1 else None
    checked = [(i, call.called or only, call) for i, call in enumerate(calls)
               if call is not None and (call.called or only)]
    verdicts = dnc.violated(store, device_id, [(number, call.tag, call.company, call.at)
                                               for _, number, call in checked])  # type: ignore[misc]
    for (i, _, _), violation in zip(checked, verdicts):
        out[i] = violation
    return out


def note(store: Store, calls: list[Call]) -> None:
    """Count the calls whose votes became violations (report.lua says which) in the Do-Not-Call
    statistics, by category and the day of the call, in one round trip."""
    if calls:
        store.pipelined(lambda pipe: [dnc_stats.note_violation(store, pipe, call.tag, dnc_stats.day_of(call.at))
                                      for call in calls])
