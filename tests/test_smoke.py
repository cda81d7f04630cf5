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
