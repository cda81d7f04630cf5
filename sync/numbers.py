"""Phone numbers: whatever a phone shows, normalised to E.164 with phonenumbers (the key of
every list, docs/PROTOCOL.md section 1), and the block keys of the `ranges` list.

The service reads numbers with the same function (blocklist/numbers.py), so a phone and the
server always agree on a number's key."""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import shortnumberinfo

MAX_INPUT_LENGTH = 40  # characters; longer input is not a phone number anyway
PARSE_CACHE_SIZE = 65536  # hot numbers (a spammer's, a hotline) are parsed once per process
# Control and format characters, line separators and lone surrogates: phonenumbers would
# quietly drop them at the ends, but a number that carries them is not what a phone showed.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

RANGES = "ranges"  # the list of blocks of 10 and 100 numbers (blocklist/lists.py makes it)


class InvalidNumber(ValueError):
    """Not a number a phone can be called from; `details["reason"]` says why in a word or two."""

    def __init__(self, message: str, details: dict[str, str]):
        super().__init__(message)
        self.message = message
        self.details = details


_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def is_region(region: str) -> bool:
    """True for a region code phonenumbers knows (`CN`, `US`, ...)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def normalize(raw: str, region: str) -> str:
    """Return the E.164 form of `raw`, read as dialled in `region`, or raise InvalidNumber."""
    if not isinstance(raw, str):
        raise InvalidNumber("number must be a string", {"reason": "not a string"})
    if CONTROL.search(raw):
        raise InvalidNumber("number contains control characters", {"reason": "control characters"})
    return _normalize(raw.strip(), region.upper())


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _normalize(raw: str, region: str) -> str:
    if not raw:
        raise InvalidNumber("number is empty", {"reason": "empty"})
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidNumber("number is too long", {"reason": "too long"})

    if not is_region(region):
        raise InvalidNumber(f"unknown region {region!r}", {"reason": "unknown region"})
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        reason = _REASONS.get(exc.error_type, "not a phone number")
        raise InvalidNumber(f"{raw!r} is not a phone number: {reason}", {"reason": reason}) from None
    if parsed.extension:
        raise InvalidNumber("numbers with an extension are not accepted", {"reason": "extension"})
    if phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # Service numbers (95xxx, 96xxx in China) are short numbers dialled within their region.
    number_region = phonenumbers.region_code_for_country_code(parsed.country_code)
    if shortnumberinfo.is_valid_short_number_for_region(parsed, number_region):
        if shortnumberinfo.is_emergency_number(phonenumbers.national_significant_number(parsed), number_region):
            raise InvalidNumber("emergency numbers cannot be reported", {"reason": "emergency number"})
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    reason = _invalid_reason(parsed)
    raise InvalidNumber(f"{raw!r} is not a valid number in {number_region or region}: {reason}", {"reason": reason})


def _invalid_reason(parsed: phonenumbers.PhoneNumber) -> str:
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    return {
        phonenumbers.ValidationResult.TOO_SHORT: "too short",
        phonenumbers.ValidationResult.TOO_LONG: "too long",
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length for its region",
    }.get(possible, "no such number range")


def block_keys(number: str) -> tuple[str, str]:
    """The keys of an E.164 number's block of 10 and block of 100 in the `ranges` list:
    `+861380013800x` and `+86138001380xx` (the free digits as x)."""
    return number[:-1] + "x", number[:-2] + "xx"
