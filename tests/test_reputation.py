"""Reputation: verdicts, labels, decay with an injected clock, and the change log."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from blocklist import reputation, tags
from tests.support import redis_state

NUMBER = "13800138000"
E164 = "+8613800138000"
VERDICT_CODES = {"unknown": "0", "allow": "1", "warn": "2", "block": "3"}


def report(client, headers, tag="loan", number=NUMBER, **extra):
    response = client.post("/v1/reports", json={"number": number, "tag": tag, **extra}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def reputation_of(client, headers, number=E164) -> dict:
    response = client.get(f"/v1/numbers/{number}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def vote(client, new_device, *tag_list, number=NUMBER) -> None:
    """One fresh device per tag in `tag_list`."""
    for tag in tag_list:
        report(client, new_device(), tag=tag, number=number)


def changes(redis_client, store, number=E164) -> list[dict]:
    """The change-log entries of one number, oldest first."""
    stream = store.keys.changes(store.keys.bucket_of(number))
    return [fields for _, fields in redis_client.xrange(stream) if fields["n"] == number]


def iso(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=timezone.utc)


def parse_iso(value: str) -> datetime:
    assert value.endswith("Z") or value.endswith("+00:00"), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset().total_seconds() == 0
    return parsed


# --- verdict thresholds ----------------------------------------------------------------------

def test_number_without_evidence_is_unknown_with_200(client, device, redis_client):
    before = redis_state(redis_client)
    body = reputation_of(client, device)
    assert body == {"number": E164, "verdict": "unknown", "label": None, "score": 0.0, "reporters": 0,
                    "tags": {}, "first_seen": None, "last_seen": None, "lists": [], "override": None,
                    "disputed": False, "held": False, "detected": [], "dnc_violations": 0}
    assert redis_state(redis_client) == before  # a lookup writes nothing


def test_one_spam_reporter_warns(client, new_device):
    vote(client, new_device, "loan")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["reporters"], body["lists"]) == ("warn", "loan", 1, [])
    assert body["score"] == 1.0


def test_two_spam_reporters_still_warn(client, new_device):
    vote(client, new_device, "loan", "loan")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["reporters"], body["lists"]) == ("warn", 2, [])


def test_three_spam_reporters_block(client, new_device):
    vote(client, new_device, "loan", "loan", "loan")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["reporters"], body["lists"]) == ("block", "loan", 3, ["spam"])
    assert body["score"] == 3.0


def test_three_spam_reporters_with_different_tags_block(client, new_device):
    vote(client, new_device, "loan", "real_estate", "insurance")
    body = reputation_of(client, new_device())
    assert body["verdict"] == "block"
    assert body["label"] == "loan"  # a three-way tie goes to the most severe


def test_fraud_block_is_on_the_spam_and_fraud_lists(client, new_device):
    vote(client, new_device, "fraud", "fraud", "fraud")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["lists"]) == ("block", "fraud", ["spam", "fraud"])


def test_ring_once_block_is_on_the_spam_and_ring_once_lists(client, new_device):
    vote(client, new_device, "ring_once", "ring_once", "ring_once")
    body = reputation_of(client, new_device())
    assert body["lists"] == ["spam", "ring_once"]


def test_a_fraud_warn_is_on_no_list(client, new_device):
    vote(client, new_device, "fraud")
    assert reputation_of(client, new_device())["lists"] == []


def test_safe_votes_outweighing_spam_allow_with_label_safe(client, new_device):
    vote(client, new_device, "loan", "safe", "safe")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["reporters"], body["lists"]) == ("allow", "safe", 3, ["allow"])
    assert body["tags"]["safe"]["reporters"] == 2


def test_safe_votes_outweighing_a_block_allow(client, new_device):
    vote(client, new_device, "fraud", "fraud", "fraud", "safe", "safe", "safe", "safe")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["lists"]) == ("allow", "safe", ["allow"])


def test_safe_votes_pull_a_block_down_to_warn(client, new_device):
    vote(client, new_device, "loan", "loan", "loan", "safe", "safe")  # net score 1 < 1.5
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"]) == ("warn", "loan")
    assert body["score"] == 1.0


def test_only_safe_votes_allow(client, new_device):
    vote(client, new_device, "safe")
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"]) == ("allow", "safe")


@pytest.mark.parametrize("tag_list, label", [
    (["delivery"], "delivery"),
    (["customer_service", "customer_service"], "customer_service"),
    (["delivery", "customer_service", "customer_service"], "customer_service"),
    (["delivery", "customer_service"], "delivery"),
])
def test_info_only_tags_allow_with_the_info_label(client, new_device, tag_list, label):
    vote(client, new_device, *tag_list)
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["lists"]) == ("allow", label, [])
    assert body["reporters"] == len(tag_list)


def test_one_spam_tag_among_info_tags_warns(client, new_device):
    vote(client, new_device, "delivery", "delivery", "telemarketing")
    body = reputation_of(client, new_device())
    assert body["verdict"] == "warn"
    assert body["label"] == "telemarketing"


# --- labels ----------------------------------------------------------------------------------

def test_label_is_the_tag_with_most_reporters_not_the_most_severe(client, new_device):
    vote(client, new_device, "real_estate", "real_estate", "fraud")
    body = reputation_of(client, new_device())
    assert body["label"] == "real_estate"
    assert body["lists"] == ["spam"]  # blocked, but not a fraud block


SPAM_CODES = [t.code for t in tags.TAXONOMY if t.kind == tags.SPAM]


@pytest.mark.parametrize("first, second", [
    ("loan", "fraud"),
    ("real_estate", "debt_collection"),
    ("silent", "harassment"),
    ("telemarketing", "ring_once"),
    (SPAM_CODES[-1], SPAM_CODES[0]),
])
def test_label_tie_goes_to_the_more_severe_tag(client, new_device, first, second):
    vote(client, new_device, first, second)
    expected = min(first, second, key=tags.INDEX.__getitem__)
    assert reputation_of(client, new_device())["label"] == expected


def test_tie_at_block_picks_the_more_severe_list(client, new_device):
    vote(client, new_device, "ring_once", "ring_once", "fraud", "fraud")
    body = reputation_of(client, new_device())
    assert (body["label"], body["lists"]) == ("fraud", ["spam", "fraud"])


# --- per-tag detail and timestamps -----------------------------------------------------------

def test_per_tag_reporters_and_scores(client, new_device):
    vote(client, new_device, "loan", "loan", "fraud", "delivery")
    body = reputation_of(client, new_device())
    assert body["tags"] == {
        "fraud": {"reporters": 1, "score": 1.0},
        "loan": {"reporters": 2, "score": 2.0},
        "delivery": {"reporters": 1, "score": 1.0},
    }
    assert body["reporters"] == 4
    assert body["score"] == 3.0  # spam evidence only


def test_first_and_last_seen_are_iso_utc(client, new_device, clock):
    start = clock.now
    vote(client, new_device, "loan")
    body = reputation_of(client, new_device())
    assert parse_iso(body["first_seen"]) == iso(start)
    assert parse_iso(body["last_seen"]) == iso(start)
    clock.advance(days=2, seconds=7)
    vote(client, new_device, "fraud")
    body = reputation_of(client, new_device())
    assert parse_iso(body["first_seen"]) == iso(start)
    assert parse_iso(body["last_seen"]) == iso(clock.now)


# --- decay -----------------------------------------------------------------------------------

def test_score_halves_after_one_half_life(client, new_device, clock, config):
    vote(client, new_device, "loan")
    clock.advance(days=config.half_life_days)
    body = reputation_of(client, new_device())
    assert body["score"] == pytest.approx(0.5, abs=0.01)
    assert body["tags"]["loan"]["score"] == pytest.approx(0.5, abs=0.01)


def test_two_half_lives_leave_a_quarter_of_the_score(client, new_device, clock, config):
    vote(client, new_device, "loan", "loan", "fraud")
    assert reputation_of(client, new_device())["score"] == 3.0
    clock.advance(days=2 * config.half_life_days)
    body = reputation_of(client, new_device())
    assert body["score"] == pytest.approx(0.75, abs=0.01)
    assert body["tags"]["loan"]["score"] == pytest.approx(0.5, abs=0.01)
    assert body["tags"]["fraud"]["score"] == pytest.approx(0.25, abs=0.01)
    assert body["reporters"] == 3  # reporters do not decay


def test_later_report_weighs_more_than_an_older_one(client, new_device, clock, config):
    vote(client, new_device, "loan")
    clock.advance(days=config.half_life_days)
    vote(client, new_device, "loan")
    assert reputation_of(client, new_device())["score"] == pytest.approx(1.5, abs=0.01)


def test_retag_after_decay_removes_exactly_the_old_evidence(client, device, clock, config):
    report(client, device, tag="loan")
    clock.advance(days=config.half_life_days)
    report(client, device, tag="fraud")
    body = reputation_of(client, device)
    assert body["tags"] == {"fraud": {"reporters": 1, "score": 1.0}}
    assert body["score"] == 1.0


def test_withdraw_after_decay_leaves_no_evidence(client, device, clock, config, redis_client, store):
    report(client, device)
    clock.advance(days=config.half_life_days / 3)
    assert client.delete(f"/v1/reports/{NUMBER}", headers=device).get_json()["withdrawn"] is True
    body = reputation_of(client, device)
    assert (body["verdict"], body["score"], body["tags"]) == ("unknown", 0.0, {})
    assert not redis_client.exists(store.keys.number(E164))


def test_fresh_block_still_blocks_just_before_one_half_life(client, new_device, clock, config):
    vote(client, new_device, "loan", "loan", "loan")
    clock.advance(days=config.half_life_days - 1)
    assert reputation_of(client, new_device())["verdict"] == "block"


def test_old_block_falls_to_warn_after_one_half_life_and_the_sweep_logs_it(
        client, new_device, clock, config, store, redis_client):
    vote(client, new_device, "loan", "loan", "loan")
    logged = changes(redis_client, store)
    assert [entry["v"] for entry in logged] == ["2", "3"]

    clock.advance(days=config.half_life_days - 1)
    assert reputation.sweep(store) == 0
    assert changes(redis_client, store) == logged

    clock.advance(days=2)
    body = reputation_of(client, new_device())
    assert (body["verdict"], body["label"], body["reporters"], body["lists"]) == ("warn", "loan", 3, [])
    assert changes(redis_client, store) == logged  # reading does not log

    assert reputation.sweep(store) == 1
    entries = changes(redis_client, store)
    assert len(entries) == len(logged) + 1
    entry = entries[-1]
    assert entry["n"] == E164
    assert entry["v"] == "2"
    assert entry["l"] == str(tags.INDEX["loan"])
    assert entry["r"] == "3"
    assert float(entry["s"]) == pytest.approx(3 * 2 ** (-(config.half_life_days + 1) / config.half_life_days),
                                              abs=0.01)
    assert entry["t"] == str(int(clock.now))

    assert reputation.sweep(store) == 0  # logged once
    assert len(changes(redis_client, store)) == len(entries)


def test_a_new_report_extends_a_block(client, new_device, clock, config, store, redis_client):
    vote(client, new_device, "loan", "loan", "loan")
    clock.advance(days=0.9 * config.half_life_days)
    vote(client, new_device, "loan")
    clock.advance(days=0.2 * config.half_life_days)  # 1.1 half-lives after the first three
    assert reputation.sweep(store) == 0
    assert reputation_of(client, new_device())["verdict"] == "block"
    assert changes(redis_client, store)[-1]["v"] == "3"


def test_sweep_leaves_other_numbers_alone(client, new_device, clock, config, store, redis_client):
    vote(client, new_device, "loan", "loan", "loan")
    vote(client, new_device, "fraud", number="13900139000")
    other = changes(redis_client, store, "+8613900139000")
    clock.advance(days=2 * config.half_life_days)
    assert reputation.sweep(store) == 1
    assert changes(redis_client, store, "+8613900139000") == other


# --- change log ------------------------------------------------------------------------------

def test_first_report_writes_exactly_one_change_entry(client, device, clock, store, redis_client):
    report(client, device, tag="loan")
    entries = changes(redis_client, store)
    assert entries == [{"n": E164, "v": "2", "l": str(tags.INDEX["loan"]), "r": "1", "s": "1.0000",
                        "t": str(int(clock.now))}]


@pytest.mark.parametrize("tag", ["fraud", "delivery", "safe"])
def test_first_report_of_any_kind_writes_one_change_entry(client, device, store, redis_client, tag):
    report(client, device, tag=tag)
    entries = changes(redis_client, store)
    assert len(entries) == 1
    expected_verdict = "warn" if tags.BY_CODE[tag].kind == tags.SPAM else "allow"
    assert entries[0]["v"] == VERDICT_CODES[expected_verdict]
    assert entries[0]["l"] == str(tags.INDEX[tag])


def test_duplicate_writes_no_change_entry(client, device, store, redis_client):
    report(client, device)
    before = redis_client.xrange(store.keys.changes(store.keys.bucket_of(E164)))
    assert report(client, device)["duplicate"] is True
    assert redis_client.xrange(store.keys.changes(store.keys.bucket_of(E164))) == before


def test_report_id_replay_writes_no_change_entry(client, device, store, redis_client):
    report(client, device, report_id="abc")
    report(client, device, tag="fraud", report_id="abc")
    assert len(changes(redis_client, store)) == 1


def test_unchanged_verdict_and_label_write_no_change_entry(client, new_device, store, redis_client):
    vote(client, new_device, "loan", "loan")
    assert len(changes(redis_client, store)) == 1


def test_reaching_block_writes_one_change_entry(client, new_device, store, redis_client):
    vote(client, new_device, "loan", "loan", "loan")
    entries = changes(redis_client, store)
    assert [(e["v"], e["r"]) for e in entries] == [("2", "1"), ("3", "3")]


def test_retag_that_changes_the_label_writes_one_change_entry(client, device, store, redis_client):
    report(client, device, tag="loan")
    report(client, device, tag="fraud")
    entries = changes(redis_client, store)
    assert [(e["v"], e["l"]) for e in entries] == [("2", str(tags.INDEX["loan"])), ("2", str(tags.INDEX["fraud"]))]


def test_withdrawing_the_last_vote_logs_unknown(client, device, store, redis_client):
    report(client, device)
    client.delete(f"/v1/reports/{NUMBER}", headers=device)
    entries = changes(redis_client, store)
    assert len(entries) == 2
    assert (entries[-1]["v"], entries[-1]["l"], entries[-1]["r"]) == ("0", "", "0")


def test_safe_votes_flipping_the_verdict_are_logged(client, new_device, store, redis_client):
    vote(client, new_device, "loan", "safe", "safe")
    entries = changes(redis_client, store)
    assert entries[-1]["v"] == "1"
    assert entries[-1]["l"] == str(tags.INDEX["safe"])


# --- evidence of any date ----------------------------------------------------------------------

YEAR = 365.25 * 86400


def dated_votes(store, moment: float, tag_list, number=E164, prefix="old") -> None:
    """Votes cast at `moment` (an import of an old file, or a back-dated report)."""
    reputation.cast_votes(store, [reputation.Vote(number=number, tag=tag, voter=f"{prefix}{i:05d}", at=moment)
                                  for i, tag in enumerate(tag_list)])


def sane(body: dict) -> None:
    import math

    assert math.isfinite(body["score"]) and body["score"] >= 0, body
    for entry in body["tags"].values():
        assert math.isfinite(entry["score"]) and entry["score"] >= 0, body


@pytest.mark.parametrize("years_ago", [7.0, 5.4, 1.5], ids=["2019", "2021", "last-year"])
def test_old_evidence_gives_small_finite_scores_and_never_stops_a_fresh_block(
        client, new_device, device, store, clock, years_ago):
    dated_votes(store, clock.now - years_ago * YEAR, ["fraud", "fraud", "delivery", "safe", "delivery"])
    old = reputation_of(client, device)
    sane(old)
    assert old["score"] < 0.1 and old["first_seen"] is not None
    vote(client, new_device, "fraud", "fraud", "fraud")  # three fresh spam reports
    body = reputation_of(client, device)
    sane(body)
    assert (body["verdict"], body["label"], body["reporters"]) == ("block", "fraud", 3)
    assert body["score"] == pytest.approx(3.0, abs=0.05)


def test_feed_and_export_carry_sane_scores_for_old_evidence(client, store, clock):
    import json

    from blocklist import apikeys

    dated_votes(store, clock.now - 5.4 * YEAR, ["loan"] * 4)
    dated_votes(store, clock.now, ["loan"] * 3, number="+8613900139000", prefix="new")
    key = {"Authorization": f"Bearer {apikeys.create(store, 'acme', 'feed')}"}
    for change in client.get("/v1/feed?limit=100", headers=key).get_json()["changes"]:
        assert 0 <= change["score"] < 10, change
    lines = [json.loads(line) for line in client.get("/v1/feed/export", headers=key).get_data(as_text=True).splitlines()]
    scores = [line["score"] for line in lines if "score" in line]
    assert scores and all(0 <= score < 10 for score in scores), lines


def test_a_clock_past_2036_still_counts_fresh_votes_in_full(client, new_device, device, clock, store):
    vote(client, new_device, "loan")  # evidence from 2026 fixes the number's epoch
    clock.now = datetime(2041, 3, 1, tzinfo=timezone.utc).timestamp()
    vote(client, new_device, "fraud", "fraud", "fraud")
    body = reputation_of(client, device)
    assert (body["verdict"], body["label"], body["reporters"]) == ("block", "fraud", 3)
    assert body["score"] == pytest.approx(3.0, abs=0.001)
    assert body["last_seen"].startswith("2041-03-01")
    # the number's epoch moved forward with the new evidence: its scores stay small numbers
    fields = store.redis.hgetall(store.keys.number(E164))
    assert int(fields["e"]) == int(clock.now // 3600)
    assert all(float(value) < 1e7 for name, value in fields.items() if name[0] == "s" and len(name) <= 3)


def test_a_rebase_keeps_withdrawals_exact(client, new_device, clock, store, config):
    first = new_device()
    report(client, first, tag="loan")
    clock.advance(days=20 * config.half_life_days)  # past the rebase horizon
    second = new_device()
    report(client, second, tag="loan")
    assert client.delete(f"/v1/reports/{E164}", headers=second).status_code == 200
    assert client.delete(f"/v1/reports/{E164}", headers=first).status_code == 200
    assert not store.redis.exists(store.keys.number(E164))  # nothing left behind, no residue


def test_votes_four_half_lives_old_stop_counting_after_the_sweep(client, new_device, device, clock, config, store):
    vote(client, new_device, "delivery", "delivery", "delivery", "delivery", "loan")
    clock.advance(days=4 * config.half_life_days + 1)
    reputation.sweep(store)
    body = reputation_of(client, device)
    assert (body["verdict"], body["reporters"], body["tags"]) == ("unknown", 0, {})
    assert body["first_seen"] is not None  # the history stays
    # decayed informational tags no longer hold a block back (the 2-to-1 rule counts fresh votes)
    vote(client, new_device, "fraud", "fraud", "fraud")
    assert reputation_of(client, device)["verdict"] == "block"


def test_the_sweep_logs_a_number_whose_last_vote_retired(client, new_device, clock, config, store, redis_client):
    vote(client, new_device, "loan")
    clock.advance(days=4 * config.half_life_days + 1)
    assert reputation.sweep(store) == 1
    assert changes(redis_client, store)[-1]["v"] == "0"
    assert reputation.sweep(store) == 0  # once


def test_a_voter_whose_vote_retired_may_vote_again_and_counts(client, device, new_device, clock, config, store):
    report(client, device, tag="loan")
    clock.advance(days=4 * config.half_life_days + 1)
    reputation.sweep(store)
    report(client, device, tag="fraud")
    vote(client, new_device, "fraud", "fraud")
    assert reputation_of(client, device)["verdict"] == "block"


def test_a_vote_of_an_erased_voter_is_refused_while_its_tombstone_lasts(store):
    bucket = store.keys.bucket_of(E164)
    store.redis.set(store.keys.erased_voter(bucket, "gone0001"), 1, ex=60)
    outcome = reputation.cast_votes(store, [reputation.Vote(number=E164, tag="loan", voter="gone0001",
                                                            at=store.clock())])[0]
    assert outcome.outcome == "erased"
    assert not store.redis.exists(store.keys.number(E164))
