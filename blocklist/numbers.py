"""Phone numbers as the service reads them: the reference client's normalisation
(sync/numbers.py), with its refusal as the API's `invalid_number` error."""
from __future__ import annotations

from sync import numbers as wire

from .errors import InvalidNumber

is_region = wire.is_region
CONTROL = wire.CONTROL  # characters no number carries: also the pattern the schemas refuse


def normalize(raw: str, region: str) -> str:
    """Return the E.164 form of `raw`, read as dialled in `region`, or raise InvalidNumber."""
    try:
        return wire.normalize(raw, region)
    except wire.InvalidNumber as exc:
        raise InvalidNumber(exc.message, exc.details) from None
