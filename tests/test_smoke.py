def test_healthz_answers_ok_when_redis_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_three_devices_block_a_number(client, new_device):
    for _ in range(3):
        response = client.post("/v1/reports", json={"number": "13800138000", "tag": "loan"}, headers=new_device())
        assert response.status_code == 201
    body = client.get("/v1/numbers/+8613800138000", headers=new_device()).get_json()
    assert body["verdict"] == "block"
    assert body["label"] == "loan"
    assert body["reporters"] == 3
    assert body["lists"] == ["spam"]


def test_reports_and_lookups_survive_redis_losing_its_scripts(client, device, redis_client):
    """Redis keeps no scripts across a restart: they are loaded again on NOSCRIPT."""
    assert client.post("/v1/reports", json={"number": "13800138000", "tag": "loan"}, headers=device).status_code == 201
    redis_client.script_flush()
    response = client.post("/v1/reports/batch", json={"reports": [{"number": "13900139000", "tag": "fraud"}]},
                           headers=device)
    assert response.get_json()["accepted"] == 1
    redis_client.script_flush()
    assert client.get("/v1/numbers/13900139000", headers=device).get_json()["label"] == "fraud"
