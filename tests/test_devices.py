"""Devices: registration, unguessable tokens stored only as a keyed hash, one voter per device."""
from __future__ import annotations

import base64
import hashlib
import threading
import time

import pytest

from blocklist import devices, reports
from blocklist.errors import Unauthorized
from blocklist.reputation import Vote, cast_votes, lookup
from blocklist.web import create_app

NUMBER = "13800138000"
E164 = "+8613800138000"


def register(client) -> dict:
    response = client.post("/v1/devices")
    assert response.status_code == 201
    return response.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def everything_in_redis(r) -> list[str]:
    """Every key name and every stored value, field and member, as text."""
    out: list[str] = []
    for key in r.scan_iter(count=1000):
        out.append(key)
        kind = r.type(key)
        if kind == "hash":
            for field, value in r.hgetall(key).items():
                out += [field, value]
        elif kind == "string":
            out.append(r.get(key))
        elif kind == "zset":
            for member, score in r.zrange(key, 0, -1, withscores=True):
                out += [member, repr(score)]
        elif kind == "stream":
            for entry_id, fields in r.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
                    out += [field, value]
        elif kind == "set":
            out += list(r.smembers(key))
        elif kind == "list":
            out += r.lrange(key, 0, -1)
        else:
            raise AssertionError(f"unexpected key type {kind} for {key}")
    return out


def test_registration_returns_201_with_device_id_and_token(client):
    response = client.post("/v1/devices")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"device_id", "token"}
    assert isinstance(body["device_id"], str) and body["device_id"]
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 43  # at least 256 bits of randomness, base64-ish


def test_registration_ignores_a_body(client):
    assert client.post("/v1/devices", json={}).status_code == 201


def test_each_registration_gets_its_own_device_and_token(client):
    bodies = [register(client) for _ in range(5)]
    assert len({b["device_id"] for b in bodies}) == 5
    assert len({b["token"] for b in bodies}) == 5


def test_token_secret_part_differs_between_devices(client):
    a, b = register(client), register(client)
    secret_a = a["token"].replace(a["device_id"], "")
    secret_b = b["token"].replace(b["device_id"], "")
    assert secret_a != secret_b
    # No long shared run between the two secrets (not a counter or a timestamp).
    assert not any(secret_a[i:i + 8] in secret_b for i in range(len(secret_a) - 8))


def test_token_authenticates_its_device(client):
    token = register(client)["token"]
    response = client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(token))
    assert response.status_code == 201


def test_only_a_keyed_hash_of_the_token_is_stored(client, redis_client):
    bodies = [register(client) for _ in range(3)]
    for body in bodies:  # votes, stream entries and idempotency records exist too
        client.post("/v1/reports", json={"number": NUMBER, "tag": "loan", "report_id": "r1", "note": "hello"},
                    headers=bearer(body["token"]))
    stored = everything_in_redis(redis_client)
    assert stored
    for body in bodies:
        token = body["token"]
        secret = token.replace(body["device_id"], "").lstrip(".")
        forms = {
            token, secret,
            hashlib.sha256(token.encode()).hexdigest(),  # an unkeyed hash could be checked offline
            hashlib.sha256(secret.encode()).hexdigest(),
            base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("="),
        }
        for text in stored:
            for form in forms:
                assert form not in text, f"a form of the token is stored: {text!r}"


def test_votes_are_not_filed_under_the_device_id(client, redis_client, store):
    body = register(client)
    client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(body["token"]))
    fields = redis_client.hgetall(store.keys.number(E164))
    assert fields
    for field, value in fields.items():
        assert body["device_id"] not in field
        assert body["device_id"] not in value


def test_two_devices_are_distinct_voters(client):
    a, b = register(client)["token"], register(client)["token"]
    for token in (a, b):
        response = client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(token))
        assert response.get_json()["duplicate"] is False
    reputation = client.get(f"/v1/numbers/{E164}", headers=bearer(a)).get_json()
    assert reputation["reporters"] == 2
    assert reputation["tags"] == {"loan": {"reporters": 2, "score": 2.0}}


def test_one_devices_retag_leaves_the_other_devices_vote(client):
    a, b = register(client)["token"], register(client)["token"]
    client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(a))
    client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(b))
    client.post("/v1/reports", json={"number": NUMBER, "tag": "fraud"}, headers=bearer(a))
    reputation = client.get(f"/v1/numbers/{E164}", headers=bearer(a)).get_json()
    assert reputation["tags"] == {"loan": {"reporters": 1, "score": 1.0}, "fraud": {"reporters": 1, "score": 1.0}}


def test_a_device_cannot_withdraw_another_devices_vote(client):
    a, b = register(client)["token"], register(client)["token"]
    client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(a))
    response = client.delete(f"/v1/reports/{NUMBER}", headers=bearer(b))
    assert response.status_code == 200
    assert response.get_json()["withdrawn"] is False
    assert client.get(f"/v1/numbers/{E164}", headers=bearer(b)).get_json()["reporters"] == 1


def test_a_forged_token_for_a_real_device_is_refused(client):
    body = register(client)
    forged = f"{body['device_id']}.{'A' * 43}"
    response = client.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(forged))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_registration_by_get_is_405(client):
    response = client.get("/v1/devices")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# --- erasure holds in every process at once -----------------------------------------------------

OTHERS = ["+8613800138001", "+8613800138002", "+8613800138003"]


def device_id_of(token: str) -> str:
    return token.partition(".")[0]


def writes(token: str) -> list[tuple[str, str, dict]]:
    """Every write a device may make: (method, path, body)."""
    return [
        ("post", "/v1/reports", {"number": OTHERS[0], "tag": "fraud"}),
        ("post", "/v1/reports/batch", {"reports": [{"number": OTHERS[1], "tag": "fraud"}]}),
        ("delete", f"/v1/reports/{E164}", {}),
        ("post", "/v1/calls", {"number": OTHERS[2], "ring_seconds": 1, "answered": False, "direction": "incoming"}),
        ("post", "/v1/disputes", {"number": OTHERS[2], "reason": "mine", "contact": "me@example.com"}),
        ("delete", "/v1/devices/me", {}),
    ]


def nothing_of(store, redis_client, token: str) -> None:
    """No record, vote or note of the device is left, under its id or its voter field."""
    device_id = device_id_of(token)
    voter = devices.voter_field(store.secret, device_id)
    left = [text for text in everything_in_redis(redis_client) if device_id in text or voter in text]
    assert left == []


def test_after_an_erasure_every_other_worker_refuses_the_tokens_writes_at_once(config, store, redis_client):
    one, other = create_app(config).test_client(), create_app(config).test_client()
    token = register(one)["token"]
    assert other.post("/v1/reports", json={"number": NUMBER, "tag": "loan"}, headers=bearer(token)).status_code == 201
    assert other.get(f"/v1/numbers/{E164}", headers=bearer(token)).status_code == 200  # it knows the token now
    assert one.delete("/v1/devices/me", headers=bearer(token)).get_json() == {"erased": True, "votes_withdrawn": 1}
    for method, path, body in writes(token):
        response = getattr(other, method)(path, json=body, headers=bearer(token))
        assert response.status_code == 401, (method, path, response.get_data(as_text=True))
        assert response.get_json()["error"]["code"] == "unauthorized"
    nothing_of(store, redis_client, token)


def test_a_report_admitted_before_an_erasure_is_refused_or_withdrawn(store, client, redis_client):
    token = register(client)["token"]
    device_id = device_id_of(token)
    voter = devices.voter_field(store.secret, device_id)
    devices.admit_votes(store, device_id, [E164])  # the report was on its way when ...
    devices.erase(store, device_id)  # ... the device was erased in another process
    outcome = cast_votes(store, [Vote(number=E164, tag="fraud", voter=voter, at=store.clock())])[0]
    assert outcome.outcome == "erased"
    assert redis_client.hget(store.keys.number(E164), voter) is None
    assert not redis_client.exists(store.keys.device(device_id), store.keys.device_votes(device_id))
    nothing_of(store, redis_client, token)


def test_an_erased_device_is_not_admitted_and_nothing_is_recorded(store, client, redis_client):
    token = register(client)["token"]
    device = devices.authenticate(store, token)  # verified before the erasure, as a worker's cache holds it
    devices.erase(store, device.id)
    with pytest.raises(Unauthorized):
        reports.submit(store, device, None, {"number": NUMBER, "tag": "fraud"})
    assert not redis_client.exists(store.keys.device_votes(device.id))
    assert lookup(store, E164)["reporters"] == 0


def test_reports_racing_an_erasure_leave_no_vote_and_none_is_accepted_after_it(config, store, redis_client):
    erasing, reporting = create_app(config), create_app(config)
    token = register(erasing.test_client())["token"]
    numbers = [f"+86137{i:08d}" for i in range(300)]
    results: list[tuple[float, int]] = []  # (when the request started, its status)
    erased_at: list[float] = []
    started = threading.Event()

    def report(chunk: list[str]) -> None:
        client = reporting.test_client()
        for number in chunk:
            began = time.monotonic()
            status = client.post("/v1/reports", json={"number": number, "tag": "fraud"},
                                 headers=bearer(token)).status_code
            results.append((began, status))
            started.set()

    def erase() -> None:
        started.wait(10)
        time.sleep(0.02)
        assert erasing.test_client().delete("/v1/devices/me", headers=bearer(token)).status_code == 200
        erased_at.append(time.monotonic())

    threads = [threading.Thread(target=report, args=(numbers[i::4],)) for i in range(4)]
    threads.append(threading.Thread(target=erase))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert erased_at and {status for _, status in results} == {201, 401}
    assert all(status == 401 for began, status in results if began > erased_at[0])
    voter = devices.voter_field(store.secret, device_id_of(token))
    assert [n for n in numbers if redis_client.hexists(store.keys.number(n), voter)] == []
    assert [lookup(store, n)["reporters"] for n in numbers] == [0] * len(numbers)
    assert not redis_client.exists(store.keys.device(device_id_of(token)), store.keys.device_votes(device_id_of(token)))
