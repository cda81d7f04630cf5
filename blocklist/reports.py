"""Reports from devices: validated items become votes, applied in one pipelined round trip."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from marshmallow import ValidationError

from . import devices, numbers, trust, violations
from .errors import CallMarkError
from .reputation import Outcome, Vote, cast_votes, withdraw_vote
from .store import Store


def _vote(store: Store, voter: str, who: trust.Reporter, item: dict[str, Any]) -> tuple[Vote, violations.Call | None]:
    """The vote an item casts and the marketing call it describes (None: no violation possible)."""
    region = item.get("region") or store.config.default_region
    details = {k: item[k] for k in ("company", "note", "call") if k in item}  # never called_number
    now = store.clock()
    vote = Vote(
        number=numbers.normalize(item["number"], region),
        tag=item["tag"],
        voter=voter,
        at=now,
        report_id=item.get("report_id"),
        details=details or None,
        weight=who.weight,
        network=who.network,
        fresh=who.fresh,
        rank=who.rank,
    )
    return vote, violations.call_of(item, region, now)


def _flagged(store: Store, device_id: str,
             votes: list[tuple[Vote, violations.Call | None]]) -> list[tuple[Vote, violations.Call | None]]:
    """The votes, those whose call was a Do-Not-Call violation flagged as such, with their calls."""
    found = violations.flags(store, device_id, [call for _, call in votes])
    return [(replace(vote, violation=True), call) if violation else (vote, call)
            for (vote, call), violation in zip(votes, found)]


def _cast(store: Store, device_id: str, votes: list[tuple[Vote, violations.Call | None]]) -> list:
    """Cast a device's votes once it is admitted (401 if erased); note the ones that changed
    something for its trust review, and the new violations for the statistics."""
    devices.admit_votes(store, device_id, [vote.number for vote, _ in votes])
    outcomes = cast_votes(store, [vote for vote, _ in votes])
    trust.note_votes(store, device_id, [vote.number for (vote, _), outcome in zip(votes, outcomes)
                                        if outcome.outcome in ("new", "retag")])
    violations.note(store, [call for (_, call), outcome in zip(votes, outcomes) if outcome.new_violation])
    return outcomes


def cast(store: Store, device: devices.Device, address: str | None, item: dict[str, Any]) -> tuple[Vote, Outcome]:
    """Cast the vote of one validated report (or complaint); InvalidNumber for a number that is
    not one. The vote says whether it is a Do-Not-Call violation."""
    who = trust.reporter(store, device, address)
    flagged = _flagged(store, device.id, [_vote(store, devices.voter_field(store.secret, device.id), who, item)])
    return flagged[0][0], _cast(store, device.id, flagged)[0]


def submit(store: Store, device: devices.Device, address: str | None, item: dict[str, Any]) -> dict[str, Any]:
    """File one validated report; raise InvalidNumber for a number that is not one."""
    vote, outcome = cast(store, device, address, item)
    return {"number": vote.number, "tag": vote.tag, "duplicate": outcome.duplicate}


def submit_batch(store: Store, device: devices.Device, address: str | None, items: list[Any], schema,
                 admit: Callable[[int], tuple[int, dict[str, Any] | None]] | None = None) -> list[dict[str, Any]]:
    """File every valid item; each result says 201 with the report or 400 with its error.

    `admit(n)` says how many of the n valid items the device's budget takes (the first ones)
    and the error of the others, which answer 429."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    read: list[tuple[int, tuple[Vote, violations.Call | None]]] = []
    voter = devices.voter_field(store.secret, device.id)
    who = trust.reporter(store, device, address)
    for index, raw in enumerate(items):
        try:
            read.append((index, _vote(store, voter, who, schema.load(raw))))
        except ValidationError as exc:
            results[index] = _failure(index, "validation_error", "the report is not valid", {"fields": exc.messages})
        except CallMarkError as exc:
            results[index] = _failure(index, exc.code, exc.message, exc.details)
    if admit is not None:
        admitted, refusal = admit(len(read))
        for index, _ in read[admitted:]:
            results[index] = {"index": index, "status": 429, "error": refusal}
        del read[admitted:]
    flagged = _flagged(store, device.id, [pair for _, pair in read])
    outcomes = _cast(store, device.id, flagged)
    for (index, _), (vote, _), outcome in zip(read, flagged, outcomes):
        results[index] = {"index": index, "status": 201, "number": vote.number, "tag": vote.tag,
                          "duplicate": outcome.duplicate}
    return results  # type: ignore[return-value]


def _failure(index: int, code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "status": 400, "error": {"code": code, "message": message, "details": details}}


def withdraw(store: Store, device_id: str, raw_number: str, region: str | None) -> dict[str, Any]:
    number = numbers.normalize(raw_number, region or store.config.default_region)
    outcome = withdraw_vote(store, number, devices.voter_field(store.secret, device_id))
    return {"number": number, "withdrawn": outcome.outcome == "withdrawn"}
