"""The staff console for adapting a model (/console/adapt/): who may use it, what a bad file
says, and the whole path: upload → Celery training task on its own queue → int8 install →
the new model answers in the chat's model list and through /v1."""

import json
import time
import uuid

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from pawa.adaptation.models import Adaptation

URL = "/console/adapt/"


def jsonl(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records).encode()


@pytest.fixture
def tiny_store(settings, tmp_path):
    """A store of its own with one tiny GGUF model (the chat, the API and the task all read
    settings.PAWA_MODELS_DIR)."""
    from inference.registry import ModelStore
    from tests.inference.tiny import write_tiny_gguf

    write_tiny_gguf(tmp_path / "tiny.gguf", "llama")
    settings.PAWA_MODELS_DIR = tmp_path / "models"
    settings.PAWA_DEFAULT_MODEL = "tiny"
    store = ModelStore(settings.PAWA_MODELS_DIR)
    store.install(str(tmp_path / "tiny.gguf"), name="tiny")
    return store


def post(client, **fields):
    data = {"base_model": "tiny", "name": "tiny-dunia", "steps": 30, "rank": 8, "learning_rate": 0.01,
            "holdout_fraction": 0, **fields}
    return client.post(URL, data)


@pytest.mark.django_db
def test_only_staff_reach_the_console(client, staff, outsider, tiny_store):
    assert client.get(URL).status_code == 302  # to the login page
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    client.force_login(outsider)
    assert client.get(URL).status_code == 403
    adaptation = Adaptation.objects.create(base_model="tiny", name="x", data_file="/nonexistent", data_name="d.jsonl",
                                           data_sha256="0" * 64, steps=1, rank=1, learning_rate=0.1)
    assert client.get(f"{URL}{adaptation.pk}/").status_code == 403
    assert client.post(f"{URL}{adaptation.pk}/cancel/").status_code == 403
    client.force_login(staff)
    page = client.get(URL)
    assert page.status_code == 200 and b"tiny" in page.content
    assert client.get(f"{URL}{adaptation.pk}/").status_code == 200


@pytest.mark.django_db
def test_a_bad_file_is_refused_naming_the_line_in_swahili(client, staff, tiny_store):
    client.force_login(staff)
    bad = SimpleUploadedFile("clinic.jsonl", jsonl({"prompt": "a", "completion": "b"}, "{oops"))
    response = post(client, data=bad, HTTP_ACCEPT_LANGUAGE="sw")
    assert response.status_code == 400
    assert "Mstari 2" in response.content.decode()
    bad = SimpleUploadedFile("clinic.csv", b"swali,jibu\na,b\n")
    response = client.post(URL, {"base_model": "tiny", "name": "tiny-dunia", "steps": 3, "rank": 4,
                                 "learning_rate": 0.01, "data": bad}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert "Line 1: the first line must be the header" in response.content.decode()
    assert not Adaptation.objects.exists() and not tiny_store.is_installed("tiny-dunia")


@pytest.mark.django_db
def test_the_console_says_how_to_enable_training(client, staff, tiny_store, monkeypatch):
    monkeypatch.setattr("pawa.adaptation.views.extra_available", lambda: False)
    client.force_login(staff)
    body = client.get(URL, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "pip install -r requirements-convert.txt" in body


@pytest.mark.django_db
def test_cancel_stops_a_queued_run(client, staff, tiny_store):
    adaptation = Adaptation.objects.create(base_model="tiny", name="x", data_file="/nonexistent", data_name="d.jsonl",
                                           data_sha256="0" * 64, steps=1, rank=1, learning_rate=0.1)
    client.force_login(staff)
    client.post(f"{URL}{adaptation.pk}/cancel/")
    adaptation.refresh_from_db()
    assert adaptation.status == Adaptation.Status.CANCELLED


@pytest.fixture
def training_worker(transactional_db):
    """A real Celery worker on the inference, default and training queues (threads in this
    process, so the tests' settings apply)."""
    from celery.contrib.testing.worker import start_worker

    from pawa.celery import app
    from pawa.generation.workers import worker_heartbeat_start, worker_heartbeat_stop

    queues = [settings.PAWA_INFERENCE_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE, settings.PAWA_TRAINING_QUEUE]
    with start_worker(app, pool="threads", concurrency=3, perform_ping_check=False, loglevel="WARNING",
                      queues=queues, shutdown_timeout=30) as worker:
        worker_heartbeat_start(hostname=worker.hostname, concurrency=2)
        try:
            yield worker
        finally:
            worker_heartbeat_stop()


def test_an_admin_adapts_a_model_then_chats_and_calls_it(client, staff, tiny_store, training_worker, live_asgi):
    import openai

    from pawa.api.keys import apikey_create

    pytest.importorskip("peft", reason="training needs the optional extra: pip install -r requirements-convert.txt")
    client.force_login(staff)
    questions = ["habari", "the habari", "habari the", "hello"]
    data = SimpleUploadedFile("salamu.jsonl", jsonl(*({"prompt": q, "completion": "dunia"} for q in questions)))
    heldout = SimpleUploadedFile("heldout.jsonl", jsonl({"prompt": "habari habari", "expected": "dunia"}))
    response = post(client, data=data, holdout=heldout)
    assert response.status_code == 302
    adaptation = Adaptation.objects.get()
    assert response["Location"] == f"{URL}{adaptation.pk}/"
    deadline = time.monotonic() + 180
    while adaptation.is_active and time.monotonic() < deadline:
        time.sleep(0.5)
        adaptation.refresh_from_db()
    assert adaptation.status == Adaptation.Status.COMPLETE, (adaptation.error_code, adaptation.error_detail)
    assert adaptation.step == 30 and adaptation.loss is not None
    assert adaptation.results["heldout_accuracy_after"] == 1.0
    page = client.get(f"{URL}{adaptation.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Exact-fact accuracy: 0 % before, 100 % after." in page

    card = tiny_store.get("tiny-dunia")
    assert card.source["base"] == "tiny" and card.chat_template == tiny_store.get("tiny").chat_template
    assert "tiny-dunia" in client.get("/chat/").content.decode()  # the chat's model picker

    _, secret = apikey_create(user=staff, name=f"adapt-{uuid.uuid4().hex[:6]}")
    api = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=secret, max_retries=0, timeout=60)
    assert "tiny-dunia" in [m.id for m in api.models.list().data]
    answer = api.chat.completions.create(model="tiny-dunia", messages=[{"role": "user", "content": "habari habari"}],
                                         temperature=0, max_tokens=8)
    assert answer.choices[0].message.content == "dunia"


def test_a_training_worker_is_not_counted_as_an_inference_worker(settings):
    from types import SimpleNamespace

    from pawa.generation.workers import _register_on_ready, workers_alive

    settings.PAWA_WORKER_ROLE = "training"
    _register_on_ready(sender=SimpleNamespace(hostname="training-test@host"))
    assert "training-test@host" not in [w.get("hostname") for w in workers_alive()]


@pytest.mark.django_db
def test_a_run_left_running_by_a_dead_worker_ends_with_a_message(client, staff, settings, tiny_store):
    from pawa.adaptation.tasks import _fail_interrupted_runs

    adaptation = Adaptation.objects.create(base_model="tiny", name="x", data_file="/nonexistent", data_name="d.jsonl",
                                           data_sha256="0" * 64, steps=1, rank=1, learning_rate=0.1,
                                           status=Adaptation.Status.RUNNING)
    settings.PAWA_WORKER_ROLE = "training"
    _fail_interrupted_runs()
    client.force_login(staff)
    page = client.get(f"{URL}{adaptation.pk}/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "Mafunzo yamesimama" in page


def test_training_tasks_go_to_the_training_queue():
    from pawa.celery import app

    route = app.amqp.router.route({}, "pawa.adaptation.tasks.adaptation_train", args=(1,), kwargs={})
    assert route["queue"].name == settings.PAWA_TRAINING_QUEUE != settings.PAWA_INFERENCE_QUEUE
