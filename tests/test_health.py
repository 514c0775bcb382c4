import json

import pytest


@pytest.mark.django_db
def test_healthz_answers_while_the_web_process_can_serve(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "redis": True, "broker": True},
                               "missing": []}


@pytest.mark.django_db
def test_healthz_is_not_healthy_without_redis(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "redis" in response.json()["missing"]


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_when_database_redis_and_a_worker_answer(client, celery_worker):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": True, "redis": True, "broker": True, "worker": True}


@pytest.mark.django_db
def test_readyz_names_the_missing_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["missing"] == ["worker"]


@pytest.mark.django_db
def test_readyz_names_a_missing_redis(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert "redis" in body["missing"] and "worker" in body["missing"]
    assert body["checks"]["database"] is True


@pytest.mark.django_db
def test_readyz_recovers_when_the_missing_parts_come_back(client, settings, idle_worker):
    good_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert client.get("/readyz").status_code == 503
    settings.REDIS_URL = good_url
    assert client.get("/readyz").status_code == 200
    idle_worker.stop()
    assert client.get("/readyz").status_code == 503
