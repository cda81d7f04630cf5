"""The reputation feed: cursor paging over the change log's buckets, retention, and the NDJSON export."""
from __future__ import annotations

import base64
import gzip
import json
import time
import zlib

import pytest

from blocklist import apikeys, changelog, feed, moderation, tags
from blocklist.reputation import Vote, cast_votes, lookup, withdraw_vote
from blocklist.web import create_app
from tests.support import assert_error

ENTRY_FIELDS = {"number", "verdict", "label", "reporters", "score", "lists", "updated_at", "dnc_violations"}


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+86138{i:08d}" for i in range(start, start + count)]


def vote(store, number: str, tag: str, voters: range | list[int]) -> None:
    """Each voter in `voters` (distinct integers) tags the number once."""
    cast_votes(store, [Vote(number=number, tag=tag, voter=f"v{v:07d}", at=store.clock()) for v in voters])


def make_changes(store, clock, count: int = 120) -> int:
    """Spread changes over many buckets and several seconds; return how many entered the log."""
    pool = numbers(count)
    for i, number in enumerate(pool):
        vote(store, number, "loan", [0])  # unknown -> warn
        if i % 3 == 0:
            vote(store, number, "real_estate", [1, 2, 3])  # warn -> block, label changes too
        clock.advance(seconds=7)
    for number in pool[::5]:
        vote(store, number, "safe", range(10, 20))  # safe outweighs spam -> allow
    return sum(store.redis.xlen(store.keys.changes(b)) for b in range(store.config.buckets))


@pytest.fixture
def app(config):
    # Paging a few hundred changes one by one outruns even the development feed limit.
    config.rate_limits = {"feed": "100000/second"}
    return create_app(config)


@pytest.fixture
def key(store) -> dict[str, str]:
    return {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}


def squeezed(raw: bytes) -> str:
    """`raw` deflated and base64url-coded as a cursor is, whatever it holds."""
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def get_page(client, key, cursor: str | None = None, limit: int | None = None) -> dict:
    query = {}
    if cursor is not None:
        query["cursor"] = cursor
    if limit is not None:
        query["limit"] = limit
    response = client.get("/v1/feed", query_string=query, headers=key)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def read_all(client, key, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
    changes: list[dict] = []
    while True:
        body = get_page(client, key, cursor, limit)
        assert len(body["changes"]) <= limit
        cursor = body["next_cursor"]
        if not body["changes"]:
            return changes, cursor
        changes += body["changes"]


# --- paging -------------------------------------------------------------------------------------

def test_paging_with_any_limit_yields_the_same_sequence(client, key, store, clock):
    total = make_changes(store, clock)
    assert 150 < total < 1000
    whole = get_page(client, key, limit=1000)["changes"]
    assert len(whole) == total
    assert len({store.keys.bucket_of(c["number"]) for c in whole}) > 40  # many buckets merged
    for limit in (1, 7, 100, 1000):
        paged, _ = read_all(client, key, limit)
        assert paged == whole, f"limit {limit}"


def per_number(changes: list[dict]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for c in changes:
        out.setdefault(c["number"], []).append((c["verdict"], c["label"]))
    return out


def test_changes_come_in_the_documented_shape(client, key, store, clock):
    make_changes(store, clock, 30)
    changes = get_page(client, key, limit=1000)["changes"]
    assert all(set(c) == ENTRY_FIELDS for c in changes)
    first = next(c for c in changes if c["number"] == numbers(1)[0])
    assert first["verdict"] == "warn" and first["label"] == "loan" and first["reporters"] == 1
    assert first["score"] == 1.0 and first["lists"] == []
    assert first["updated_at"] == "2026-10-28T00:00:00Z"  # the injected clock, in ISO 8601 UTC
    blocked = next(c for c in changes if c["verdict"] == "block")  # at the third spam reporter
    assert blocked["label"] == "real_estate" and blocked["reporters"] == 3 and blocked["lists"] == ["spam"]


def test_each_numbers_changes_come_oldest_first(client, key, store, clock):
    make_changes(store, clock, 30)
    changes = get_page(client, key, limit=1000)["changes"]
    by_number = per_number(changes)
    assert by_number[numbers(1)[0]] == [
        ("warn", "loan"), ("block", "real_estate"), ("warn", "real_estate"), ("allow", "safe")]
    assert by_number[numbers(2)[1]] == [("warn", "loan")]
    assert by_number[numbers(4)[3]] == [("warn", "loan"), ("block", "real_estate")]
    assert by_number[numbers(6)[5]] == [("warn", "loan"), ("allow", "safe")]
    # Across buckets: oldest first by stream id, to the millisecond; ties in bucket order.
    entries = [(*changelog.entry_key(entry_id), b, fields["n"])
               for b in range(store.config.buckets) for entry_id, fields in store.redis.xrange(store.keys.changes(b))]
    assert [c["number"] for c in changes] == [n for *_, n in sorted(entries)]


def test_the_last_change_of_each_number_is_its_current_verdict(client, key, store, clock):
    make_changes(store, clock, 40)
    latest = {c["number"]: c for c in get_page(client, key, limit=1000)["changes"]}
    assert set(latest) == set(numbers(40))
    for number, change in latest.items():
        now = lookup(store, number)
        assert (change["verdict"], change["label"], change["lists"]) == (now["verdict"], now["label"], now["lists"])


def test_default_page_is_100_changes(client, key, store, clock):
    make_changes(store, clock)
    assert len(get_page(client, key)["changes"]) == 100


def test_the_cursor_after_the_last_change_waits_for_new_ones(client, key, store, clock):
    make_changes(store, clock, 20)
    _, cursor = read_all(client, key, 50)
    assert get_page(client, key, cursor)["changes"] == []
    vote(store, "+8613900139000", "fraud", [0])
    fresh = get_page(client, key, cursor)["changes"]
    assert [(c["number"], c["verdict"], c["label"]) for c in fresh] == [("+8613900139000", "warn", "fraud")]


def test_a_repeated_vote_adds_no_change(client, key, store):
    vote(store, "+8613900139000", "fraud", [0])
    _, cursor = read_all(client, key, 100)
    vote(store, "+8613900139000", "fraud", [0])
    assert get_page(client, key, cursor)["changes"] == []


def test_an_empty_log_gives_an_empty_page_and_a_usable_cursor(client, key, store):
    body = get_page(client, key)
    assert body["changes"] == []
    vote(store, "+8613900139000", "loan", [0])
    assert len(get_page(client, key, body["next_cursor"])["changes"]) == 1


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5", ""])
def test_a_limit_outside_1_to_1000_is_400(client, key, limit):
    assert_error(client.get("/v1/feed", query_string={"limit": limit}, headers=key), 400, "validation_error")


@pytest.mark.parametrize("cursor", [
    "not a cursor",
    "!!!!",
    "eJyrVjJUslIyNDQ1VaoFAB6sBFQ",  # base64 of something that is not a cursor
    changelog.encode_cursor({999: "1-0"}),  # a bucket that does not exist
    changelog.encode_cursor({0: "abc"}),  # not a stream id
    changelog.encode_cursor({0: "\u00b2-0"}),  # superscript two: str.isdigit() says yes, int() says no
    changelog.encode_cursor({0: "\u0661\u0662\u0663-0"}),  # Arabic-Indic 123: int() takes it, Redis does not
    changelog.encode_cursor({0: "1-\uff11"}),  # a fullwidth sequence number
    changelog.encode_cursor({0: "99999999999999999999999-0"}),  # past a stream id's 64 bits
    changelog.encode_cursor({0: "18446744073709551616-0"}),  # 2**64
    changelog.encode_cursor({0: "1-18446744073709551616"}),
    changelog.encode_cursor({0: "18446744073709551615-18446744073709551615"}),  # nothing can come after it
    pytest.param(squeezed(b"[" * 100_000), id="inflates-to-100k-brackets"),
    pytest.param(squeezed(b'{"0": ' + b"[" * 5000 + b"]" * 5000 + b"}"), id="deep-position"),
    "eJyrVjJUslIyNDQ1VaoFAB6sBFQ\n",  # a cursor's alphabet is base64url's
])
def test_a_bad_cursor_is_400(client, key, cursor):
    assert_error(client.get("/v1/feed", query_string={"cursor": cursor}, headers=key), 400, "validation_error")


def test_the_largest_stream_id_is_a_valid_cursor_position(client, key):
    last = "18446744073709551615-18446744073709551614"  # one before the largest id Redis can hold
    body = get_page(client, key, changelog.encode_cursor({0: last}))
    assert body["changes"] == []


def test_an_unknown_query_parameter_is_400(client, key):
    assert_error(client.get("/v1/feed", query_string={"since": "0"}, headers=key), 400, "validation_error")


def test_a_cursor_survives_a_restart(config, key, store, clock):
    make_changes(store, clock, 60)
    first = create_app(config).test_client()
    whole = get_page(first, key, limit=1000)["changes"]
    head = get_page(first, key, limit=37)
    del first
    second = create_app(config).test_client()  # a new process on the same Redis
    rest, _ = read_all(second, key, 10, head["next_cursor"])
    assert head["changes"] + rest == whole


# --- retention ----------------------------------------------------------------------------------

def old_entry(store, number: str, days_ago: float) -> None:
    """A change-log entry written `days_ago` (stream ids carry the server's wall-clock time)."""
    ms = int((time.time() - days_ago * 86400) * 1000)
    store.redis.xadd(store.keys.changes(store.keys.bucket_of(number)),
                     {"n": number, "v": 2, "l": tags.INDEX["loan"], "r": 1, "s": "1.0000", "t": int(ms / 1000)},
                     id=f"{ms}-0")


def test_a_cursor_past_the_retention_whose_entries_were_trimmed_is_410(config, redis_client):
    config.change_retention_days = 1
    app = create_app(config)
    store = app.extensions["callmark"]
    client = app.test_client()
    key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    old, recent = "+8613900000001", "+8613900000002"
    old_entry(store, old, days_ago=3)
    old_entry(store, recent, days_ago=3)
    stale = get_page(client, key, limit=1)["next_cursor"]  # names one entry three days old
    # Newer changes in the same buckets, then the retention trims what is older than a day.
    vote(store, old, "fraud", [5])
    vote(store, recent, "fraud", [5])
    assert len(get_page(client, key, stale, 1000)["changes"]) == 3  # nothing trimmed yet: still valid
    min_id = int((time.time() - 86400) * 1000)
    for number in (old, recent):
        redis_client.xtrim(store.keys.changes(store.keys.bucket_of(number)), minid=min_id, approximate=False)
    error = assert_error(client.get("/v1/feed", query_string={"cursor": stale}, headers=key), 410, "cursor_expired")
    assert error["details"]["export"] == "/v1/feed/export"
    assert "export" in error["message"]


def test_a_fresh_cursor_is_valid_with_a_short_retention(config):
    config.change_retention_days = 1
    app = create_app(config)
    store = app.extensions["callmark"]
    client = app.test_client()
    key = {"Authorization": f"Bearer {apikeys.create(store, 'vendor', 'feed')}"}
    vote(store, "+8613900000001", "loan", [0])
    cursor = get_page(client, key)["next_cursor"]
    vote(store, "+8613900000002", "loan", [0])
    assert len(get_page(client, key, cursor)["changes"]) == 1


# --- export -------------------------------------------------------------------------------------

def export_lines(client, key, **headers) -> tuple[list[dict], dict]:
    response = client.get("/v1/feed/export", headers={**key, **headers})
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    data = response.get_data()
    if response.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    lines = [json.loads(line) for line in data.decode().splitlines()]
    return lines[:-1], lines[-1]


def test_export_has_every_number_with_a_verdict_then_the_cursor(client, key, store, clock):
    make_changes(store, clock, 30)
    vote(store, "+8613900000001", "delivery", [0])  # allow, informational
    vote(store, "+8613900000002", "loan", [0])
    withdraw_vote(store, "+8613900000002", "v0000000")  # back to unknown
    moderation.open_dispute(store, "+8613900000003", "mine", "owner@example.com")  # no evidence: still unknown
    rows, last = export_lines(client, key)
    assert set(last) == {"next_cursor"}
    expected = set(numbers(30)) | {"+8613900000001"}
    assert {row["number"] for row in rows} == expected
    assert len(rows) == len(expected)
    for row in rows:
        assert row == lookup(store, row["number"])
        assert row["verdict"] != "unknown"


def test_export_is_gzip_when_asked(client, key, store, clock):
    make_changes(store, clock, 30)
    plain = client.get("/v1/feed/export", headers=key)
    assert "Content-Encoding" not in plain.headers
    zipped = client.get("/v1/feed/export", headers={**key, "Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert zipped.get_data()[:2] == b"\x1f\x8b"
    assert sorted(gzip.decompress(zipped.get_data()).splitlines()) == sorted(plain.get_data().splitlines())


def test_export_of_an_empty_store_is_just_the_cursor(client, key):
    rows, last = export_lines(client, key)
    assert rows == []
    assert set(last) == {"next_cursor"}


def test_changes_after_the_export_appear_in_the_feed_from_its_cursor(client, key, store, clock):
    make_changes(store, clock, 30)
    _, last = export_lines(client, key)
    vote(store, "+8613900000001", "fraud", [0, 1, 2])  # a new number: warn, then block
    already_exported = numbers(2)[1]  # warn by one loan report
    vote(store, already_exported, "fraud", [60, 61, 62])
    changes, _ = read_all(client, key, 100, last["next_cursor"])
    assert per_number(changes) == {
        "+8613900000001": [("warn", "fraud"), ("block", "fraud")],
        already_exported: [("warn", "fraud"), ("block", "fraud")],  # two fraud reports outweigh one loan
    }


def test_a_change_made_during_the_export_is_in_the_feed_from_its_cursor(store, clock, client, key):
    make_changes(store, clock, 30)
    stream = feed.export(store)
    first = next(stream)  # the scan has started
    assert first
    vote(store, "+8613900000001", "fraud", [0])
    last = json.loads(b"".join(stream).decode().splitlines()[-1])
    changes, _ = read_all(client, key, 100, last["next_cursor"])
    assert ("+8613900000001", "warn") in [(c["number"], c["verdict"]) for c in changes]
