"""The published lists: rules over a number's verdict and label, defined in one place.

Most lists hold numbers. Two hold something else and exist for the phone, which only has
filters: `ranges` holds the prefixes of blocks of consecutive numbers that spammers rotate
through, and `allow` holds the numbers that must get through whatever a range says. The
reference client (sync/client.py `verdict`) checks `allow` first, then the number in the
other lists, then its block prefixes in `ranges`.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

from sync.numbers import RANGES, block_keys

# name -> rule(verdict, label). The change log records verdict and label changes, so a
# list whose rule reads only these two never misses a membership change.
LIST_RULES: dict[str, Callable[[str, str | None], bool]] = {
    "spam": lambda verdict, label: verdict == "block",
    "fraud": lambda verdict, label: verdict == "block" and label == "fraud",
    "ring_once": lambda verdict, label: verdict == "block" and label == "ring_once",
    # safe evidence outweighs spam, or an operator allowed it (both read allow + safe)
    "allow": lambda verdict, label: verdict == "allow" and label == "safe",
}
# RANGES, derived from the spam list's members at each publish, and its keys are wire formats
PUBLISHED = (*LIST_RULES, RANGES)

# Range rules: a block of 10 (all digits but the last) is listed when RANGE_10_MIN of its
# numbers are spam; a block of 100 when RANGE_100_MIN of its numbers are, spread over at
# least RANGE_100_SUBBLOCKS of its blocks of 10. Numbers shorter than RANGE_MIN_DIGITS
# (service and short numbers) never make a range.
RANGE_10_MIN = 4
RANGE_100_MIN = 8
RANGE_100_SUBBLOCKS = 4
RANGE_MIN_DIGITS = 10


def lists_for(verdict: str, label: str | None) -> list[str]:
    """The names of the number lists a number with this verdict and label belongs to."""
    return [name for name, rule in LIST_RULES.items() if rule(verdict, label)]


def ranges(spam_numbers: Iterable[str]) -> set[str]:
    """The block keys the range rules list, given every number on the spam list."""
    tens: Counter[str] = Counter()
    for number in spam_numbers:
        if len(number) - 1 >= RANGE_MIN_DIGITS:
            tens[block_keys(number)[0]] += 1
    listed = {ten for ten, count in tens.items() if count >= RANGE_10_MIN}
    hundreds: dict[str, list[int]] = {}
    for ten, count in tens.items():
        hundreds.setdefault(ten[:-2] + "xx", []).append(count)
    listed.update(hundred for hundred, counts in hundreds.items()
                  if sum(counts) >= RANGE_100_MIN and len(counts) >= RANGE_100_SUBBLOCKS)
    return listed
