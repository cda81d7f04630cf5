"""Devices: registration, unguessable tokens stored only as a keyed hash, one voter per device."""
from __future__ import annotations

import base64
import hashlib

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
