"""The published lists: rules over a number's verdict and label, defined in one place."""
from __future__ import annotations

from typing import Callable

# name -> rule(verdict, label). The change log records verdict and label changes, so a
# list whose rule reads only these two never misses a membership change.
LIST_RULES: dict[str, Callable[[str, str | None], bool]] = {
    "spam": lambda verdict, label: verdict == "block",
    "fraud": lambda verdict, label: verdict == "block" and label == "fraud",
    "ring_once": lambda verdict, label: verdict == "block" and label == "ring_once",
}


def lists_for(verdict: str, label: str | None) -> list[str]:
    """The names of the lists a number with this verdict and label belongs to."""
    return [name for name, rule in LIST_RULES.items() if rule(verdict, label)]
