"""The one admission path of chat and API: defaults, max_tokens, context, concurrency, queue, workers."""

import socket
import threading
import time

import pytest
from django.db import connection

from pawa.api.models import ApiLimits
from pawa.generation.admission import SAMPLING_DEFAULTS, GenerationRefused, default_max_tokens, generation_admit
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client

SMOL = "smollm2-135m-instruct"
CONTEXT = 8192  # SmolLM2's context length


def admit(user, prompt=None, *, kind=Generation.Kind.CHAT, params=None, trim=False):
    if prompt is None:
        prompt = [{"role": "user", "content": "Habari?"}] if kind == Generation.Kind.CHAT else "Habari"
    source = Generation.Source.WEB if trim else Generation.Source.API
    return generation_admit(user=user, model_name=SMOL, kind=kind, source=source, prompt=prompt,
                            params=params or {}, trim=trim)


def refusal(call) -> GenerationRefused:
    with pytest.raises(GenerationRefused) as excinfo:
        call()
    return excinfo.value


def long_history(turns: int) -> list[dict]:
    messages = []
    for index in range(turns):
        messages += [{"role": "user", "content": f"Swali la {index}: habari za leo?"},
                     {"role": "assistant", "content": "Nzuri sana, asante kwa kuuliza."}]
    return messages + [{"role": "user", "content": "Na swali la mwisho?"}]


@pytest.fixture(autouse=True)
def models(real_models):
    return real_models


@pytest.mark.django_db
class TestRules:
    pytestmark = pytest.mark.usefixtures("idle_worker")

    def test_chat_and_api_sample_with_the_same_defaults(self, owner, settings):
        settings.PAWA_MAX_CONCURRENT_GENERATIONS = 5
        chat = admit(owner, trim=True).generation.params
        api = admit(owner).generation.params
        completion = admit(owner, kind=Generation.Kind.COMPLETION).generation.params
        assert chat == api == completion
        assert {name: chat[name] for name in SAMPLING_DEFAULTS} == SAMPLING_DEFAULTS
        assert chat["max_tokens"] == default_max_tokens(CONTEXT) == 512

    def test_an_explicit_value_wins_over_the_default(self, owner):
        params = admit(owner, params={"temperature": 0.0, "top_k": 5, "max_tokens": 7}).generation.params
        assert params["temperature"] == 0.0 and params["top_k"] == 5 and params["max_tokens"] == 7

    def test_max_tokens_above_the_context_is_refused_before_anything_is_queued(self, owner):
        refused = refusal(lambda: admit(owner, params={"max_tokens": 65535}))
        assert refused.code == "max_tokens_too_large" and refused.param == "max_tokens"
        assert "max_tokens" in str(refused) and "8192" in str(refused)
        assert Generation.objects.count() == 0

    def test_max_tokens_that_does_not_fit_beside_the_prompt_is_clamped_to_the_room_left(self, owner):
        admission = admit(owner, params={"max_tokens": CONTEXT})
        assert admission.max_tokens == CONTEXT - admission.prompt_tokens
        assert admission.generation.params["max_tokens"] == admission.max_tokens

    def test_the_default_max_tokens_is_clamped_too(self, owner):
        admission = admit(owner, "habari " * 3960, kind=Generation.Kind.COMPLETION)  # ~7,900 tokens
        assert 0 < admission.max_tokens == CONTEXT - admission.prompt_tokens < 512

    def test_a_history_that_does_not_fit_is_refused_on_the_api(self, owner):
        refused = refusal(lambda: admit(owner, long_history(400)))
        assert refused.code == "context_length_exceeded" and refused.param == "messages"
        assert Generation.objects.count() == 0

    def test_a_history_that_does_not_fit_is_trimmed_for_the_chat(self, owner):
        messages = [{"role": "system", "content": "Wewe ni PAWA."}, *long_history(400)]
        admission = admit(owner, messages, trim=True)
        assert admission.dropped_messages > 0
        kept = admission.generation.prompt
        assert kept[0] == messages[0] and kept[1]["role"] == "user" and kept[-1] == messages[-1]
        assert len(kept) == len(messages) - admission.dropped_messages

    def test_bad_sampling_values_name_their_parameter(self, owner):
        refused = refusal(lambda: admit(owner, params={"top_p": 0.0}))
        assert refused.code == "invalid_parameter" and refused.param == "top_p"

    def test_an_unknown_model_is_refused(self, owner):
        refused = refusal(lambda: generation_admit(
            user=owner, model_name="gpt-9", kind="chat", source="api", prompt=[{"role": "user", "content": "hi"}],
            params={}))
        assert refused.code == "model_not_found" and refused.param == "model"

    def test_a_user_has_a_number_of_answers_at_once(self, owner, outsider, settings):
        settings.PAWA_MAX_CONCURRENT_GENERATIONS = 2
        admit(owner)
        admit(owner)
        refused = refusal(lambda: admit(owner))
        assert refused.code == "concurrency_limit" and refused.retry_after
        admit(outsider)  # another user's slots are their own

    def test_an_admin_can_raise_one_users_limit(self, owner, django_user_model, settings):
        settings.PAWA_MAX_CONCURRENT_GENERATIONS = 1
        ApiLimits.objects.create(user=owner, max_concurrent=3)
        user = django_user_model.objects.get(pk=owner.pk)
        for _ in range(3):
            admit(user)
        assert refusal(lambda: admit(user)).code == "concurrency_limit"

    def test_a_full_queue_is_refused(self, owner, settings):
        settings.PAWA_MAX_QUEUE = 1
        sync_client().zadd(settings.PAWA_QUEUE_KEY, {"someone-else": 1})
        try:
            refused = refusal(lambda: admit(owner))
        finally:
            sync_client().zrem(settings.PAWA_QUEUE_KEY, "someone-else")
        assert refused.code == "queue_full" and refused.retry_after


@pytest.mark.django_db
def test_without_a_live_worker_nothing_is_admitted(owner):
    refused = refusal(lambda: admit(owner))
    assert refused.code == "no_worker" and refused.retry_after
    assert Generation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrency_is_atomic_under_a_parallel_burst(owner, idle_worker, settings):
    settings.PAWA_MAX_CONCURRENT_GENERATIONS = 2
    barrier = threading.Barrier(8)
    outcomes = []

    def request():
        try:
            barrier.wait()
            admit(owner)
            outcomes.append("admitted")
        except GenerationRefused as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["admitted"] * 2 + ["concurrency_limit"] * 6
    assert Generation.objects.for_user(owner).active().count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_does_not_answer_is_a_refusal_within_seconds(owner, idle_worker, monkeypatch):
    """A broker that accepts connections and never answers: the enqueue gives up, the generation
    ends as an error, and its readers hear it."""
    from celery import Celery

    from inference import relay
    from pawa.generation import tasks

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(silent.accept()) for _ in range(16)], daemon=True).start()
    broker = Celery("silent")
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    broker.conf.broker_url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    monkeypatch.setattr(tasks.run_generation, "apply_async",
                        lambda args, queue: broker.send_task(tasks.run_generation.name, args=args, queue=queue))
    started = time.monotonic()
    refused = refusal(lambda: admit(owner))
    assert time.monotonic() - started < 30
    assert refused.code == "queue_unavailable"
    generation = Generation.objects.get()
    assert generation.status == "error"
    events = [relay.decode(fields) for _, fields in sync_client().xrange(relay.stream_key(str(generation.id)))]
    assert events[-1]["type"] == "error" and events[-1]["code"] == "queue_unavailable"
    silent.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_chat_messages_and_api_calls_lose_nothing(make_user, idle_worker, settings):
    """Writers at once on the embedded SQLite (WAL, IMMEDIATE transactions, busy timeout): every
    chat message and API generation is saved; none is lost to "database is locked"."""
    from pawa.chat import services as chat
    from pawa.chat.models import Message

    settings.PAWA_MAX_CONCURRENT_GENERATIONS = 100
    settings.PAWA_MAX_QUEUE = 1000
    users = [make_user(f"mtu{index}@example.com") for index in range(12)]
    conversations = [chat.conversation_create(user=user, model_name=SMOL) for user in users]
    barrier = threading.Barrier(24)
    failures = []

    def chat_user(conversation):
        try:
            barrier.wait()
            for turn in range(3):
                _, answer = chat.message_send(conversation=conversation, content=f"Swali {turn}")
                # The worker finishes it meanwhile, as a real one writes its answer.
                Generation.objects.filter(id=answer.generation_id).update(status="complete", text="Jibu")
                Message.objects.filter(id=answer.id).update(status="complete", content="Jibu")
        except Exception as exc:  # noqa: BLE001 - the test counts them
            failures.append(repr(exc))
        finally:
            connection.close()

    def api_user(user):
        try:
            barrier.wait()
            for _ in range(3):
                admit(user)
        except Exception as exc:  # noqa: BLE001
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=chat_user, args=(c,)) for c in conversations]
    threads += [threading.Thread(target=api_user, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert Message.objects.filter(role="user").count() == 36
    assert Generation.objects.filter(source="web").count() == 36
    assert Generation.objects.filter(source="api").count() == 36
