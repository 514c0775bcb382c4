"""Generations that will never finish are ended: the reaper, the worker registry and readers' idle checks."""

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from inference import relay
from pawa.chat.models import Conversation, Message
from pawa.generation import services
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client
from pawa.generation.workers import Heartbeat, last_seen_key, seconds_without_worker, workers_alive

pytestmark = pytest.mark.django_db


def events_of(generation) -> list[dict]:
    return [relay.decode(fields) for _, fields in sync_client().xrange(relay.stream_key(str(generation.id)))]


@pytest.fixture
def answer(owner):
    """A chat answer and its generation, as the chat writes them."""
    conversation = Conversation.objects.create(user=owner, model_name="smollm2-135m-instruct")

    def make(status, *, age=60.0, queued=True):
        generation = Generation.objects.create(user=owner, model_name="smollm2-135m-instruct",
                                               prompt=[{"role": "user", "content": "Habari?"}], status=status)
        then = timezone.now() - timedelta(seconds=age)
        Generation.objects.filter(id=generation.id).update(
            created_at=then, started_at=then if status == Generation.Status.RUNNING else None)
        if status == Generation.Status.QUEUED and queued:
            sync_client().zadd(settings.PAWA_QUEUE_KEY, {str(generation.id): time.time()})
        message = Message.objects.create(conversation=conversation, role="assistant", generation=generation,
                                         status=status)
        generation.refresh_from_db()
        return generation, message

    return make


@pytest.fixture
def no_worker_for():
    """No worker registered, the last one seen `seconds` ago."""

    def set_last_seen(seconds: float):
        sync_client().set(last_seen_key(), time.time() - seconds)

    yield set_last_seen
    sync_client().delete(last_seen_key())


def test_a_running_generation_without_its_worker_is_interrupted_with_its_text_kept(answer, idle_worker):
    generation, message = answer(Generation.Status.RUNNING)
    key = relay.stream_key(str(generation.id))
    sync_client().xadd(key, relay.encode({"type": "delta", "text": "Habari "}))
    sync_client().xadd(key, relay.encode({"type": "delta", "text": "za asubuhi"}))
    assert services.generation_reap() == {"interrupted": 1, "failed": 0}
    generation.refresh_from_db()
    message.refresh_from_db()
    assert generation.status == message.status == "interrupted"
    assert generation.text == message.content == "Habari za asubuhi"
    assert events_of(generation)[-1]["type"] == "error" and events_of(generation)[-1]["code"] == "interrupted"


def test_a_running_generation_whose_worker_beats_is_left_alone(answer, idle_worker):
    beating, _ = answer(Generation.Status.RUNNING)
    sync_client().set(relay.alive_key(str(beating.id)), "1", ex=10)
    just_claimed, _ = answer(Generation.Status.RUNNING, age=1)  # its worker has not beaten yet
    assert services.generation_reap() == {"interrupted": 0, "failed": 0}
    assert set(Generation.objects.values_list("status", flat=True)) == {"running"}


def test_queued_generations_fail_when_no_worker_was_seen_for_a_while(answer, no_worker_for, settings):
    generation, message = answer(Generation.Status.QUEUED, age=1)
    no_worker_for(settings.PAWA_NO_WORKER_GRACE + 5)
    assert services.generation_reap() == {"interrupted": 0, "failed": 1}
    generation.refresh_from_db()
    message.refresh_from_db()
    assert generation.status == message.status == "error"
    assert events_of(generation)[-1]["code"] == "no_worker"
    assert services.generation_queue_position(generation.id) is None


def test_queued_generations_wait_through_a_short_worker_restart(answer, no_worker_for):
    answer(Generation.Status.QUEUED, age=1)
    no_worker_for(2)
    assert services.generation_reap()["failed"] == 0


def test_nothing_is_ended_while_redis_cannot_be_reached(answer, no_worker_for, settings):
    queued, _ = answer(Generation.Status.QUEUED)
    running, _ = answer(Generation.Status.RUNNING)
    no_worker_for(settings.PAWA_NO_WORKER_GRACE + 5)
    reachable, settings.REDIS_URL = settings.REDIS_URL, "redis://127.0.0.1:1/0"  # Redis restarting
    try:
        with pytest.raises(redis.ConnectionError):
            services.generation_reap()
        with pytest.raises(redis.ConnectionError):
            services.generation_idle_event(generation_id=queued.id)
    finally:
        settings.REDIS_URL = reachable
    assert set(Generation.objects.values_list("status", flat=True)) == {"queued", "running"}


def test_a_queued_generation_lost_from_the_queue_fails(answer, idle_worker):
    lost, _ = answer(Generation.Status.QUEUED, queued=False)
    waiting, _ = answer(Generation.Status.QUEUED)
    assert services.generation_reap() == {"interrupted": 0, "failed": 1}
    lost.refresh_from_db()
    waiting.refresh_from_db()
    assert lost.status == "error" and events_of(lost)[-1]["code"] == "lost"
    assert waiting.status == "queued"


def test_a_reader_of_a_queued_generation_hears_when_no_worker_will_take_it(answer, no_worker_for, settings):
    generation, _ = answer(Generation.Status.QUEUED, age=1)
    no_worker_for(settings.PAWA_NO_WORKER_GRACE + 1)
    event = services.generation_idle_event(generation_id=generation.id)
    assert event["type"] == "error" and event["code"] == "no_worker" and event["status"] == "error"


def test_a_reader_of_a_queued_generation_hears_its_position_and_wait(answer, idle_worker, owner):
    Generation.objects.create(user=owner, model_name="m", prompt=[], status="complete", total_ms=4000)
    Generation.objects.create(user=owner, model_name="m", prompt=[], status="complete", total_ms=8000)
    first, _ = answer(Generation.Status.QUEUED)
    second, _ = answer(Generation.Status.QUEUED)
    event = services.generation_idle_event(generation_id=second.id)
    # Position 2, 6 s per answer on average, one answer at a time.
    assert event == {"type": "queued", "position": 2, "wait_seconds": 12}


def test_the_registry_lists_live_workers_and_forgets_stopped_ones():
    assert workers_alive() == []
    heartbeat = Heartbeat("w1@tests", concurrency=3, reap=False).start()
    try:
        [entry] = workers_alive()
        assert entry["hostname"] == "w1@tests" and entry["concurrency"] == 3 and entry["pid"]
        assert isinstance(entry["models"], list)
        assert seconds_without_worker() == 0
    finally:
        heartbeat.stop()
    assert workers_alive() == []
    assert seconds_without_worker() < 5


@pytest.mark.django_db(transaction=True)
def test_the_worker_heartbeat_runs_the_reaper(answer, settings):
    settings.PAWA_WORKER_HEARTBEAT_SECONDS = 0.2
    generation, _ = answer(Generation.Status.RUNNING)
    heartbeat = Heartbeat("reaper@tests").start()
    try:
        deadline = time.monotonic() + 10
        while Generation.objects.get(id=generation.id).status == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        heartbeat.stop()
    assert Generation.objects.get(id=generation.id).status == "interrupted"
