"""Plans and quotas, enforced in the one admission gate: on the chat websocket and on the API alike."""

import json
import threading
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from pawa.api.keys import apikey_create
from pawa.chat.models import Conversation, Message
from pawa.generation.admission import GenerationRefused, generation_admit
from pawa.generation.models import Generation
from pawa.plans.models import Plan
from pawa.plans.quotas import quota_status
from tests.chat_helpers import connect, events_until

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"


@pytest.fixture
def plans(db):
    """The seeded plans (a transactional test before this one may have flushed them)."""
    from importlib import import_module

    from django.apps import apps

    import_module("pawa.plans.migrations.0002_seed_plans").seed(apps, None)
    return {plan.slug: plan for plan in Plan.objects.all()}


def give_plan(user, **quotas) -> Plan:
    """A plan of its own for `user`: the given quotas, everything else unlimited."""
    quotas.setdefault("max_concurrent", 50)
    plan = Plan.objects.create(slug=f"test-{user.pk}", name="Test", **quotas)
    user.plan = plan
    user.save(update_fields=["plan"])
    return plan


def used(user, *, tokens: int = 0, status=Generation.Status.COMPLETE, model=SMOL, ago=timedelta(0)) -> Generation:
    """Usage from an earlier answer: `tokens` prompt and completion tokens together."""
    generation = Generation.objects.create(user=user, model_name=model, prompt=[], status=status,
                                           prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2)
    Generation.objects.filter(pk=generation.pk).update(created_at=timezone.now() - ago)
    return generation


# Each quota: the plan, the usage already there, and what a refusal looks like (chat code, HTTP status,
# OpenAI error type and code).
SCENARIOS = {
    "requests_per_minute": (dict(requests_per_minute=2), dict(count=2, tokens=0),
                            ("rate_limit_exceeded", 429, "rate_limit_exceeded", "requests_per_minute")),
    "tokens_per_minute": (dict(tokens_per_minute=100), dict(count=1, tokens=150),
                          ("rate_limit_exceeded", 429, "rate_limit_exceeded", "tokens_per_minute")),
    "tokens_per_day": (dict(tokens_per_day=1000), dict(count=1, tokens=1000),
                       ("insufficient_quota", 429, "insufficient_quota", "tokens_per_day")),
    "tokens_per_month": (dict(tokens_per_month=5000), dict(count=1, tokens=5000),
                         ("insufficient_quota", 429, "insufficient_quota", "tokens_per_month")),
    "concurrency": (dict(max_concurrent=1), dict(count=1, tokens=0, status=Generation.Status.QUEUED),
                    ("concurrency_limit", 429, "requests", "concurrency_limit")),
    "allowed_models": (dict(allowed_models=[GEMMA]), dict(count=0, tokens=0),
                       ("model_not_allowed", 403, "permission_error", "model_not_allowed")),
}


def _prepare(user, scenario: str) -> tuple:
    quotas, usage, expected = SCENARIOS[scenario]
    give_plan(user, **quotas)
    for _ in range(usage["count"]):
        used(user, tokens=usage["tokens"], status=usage.get("status", Generation.Status.COMPLETE))
    return expected


def api_post(client, secret, body, path="/v1/chat/completions"):
    return client.post(path, json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {secret}")


def chat_body(model=SMOL):
    return {"model": model, "messages": [{"role": "user", "content": "Habari?"}], "max_tokens": 8}


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_quota_is_enforced_on_the_api(client, owner, scenario):
    _chat_code, status, error_type, code = _prepare(owner, scenario)
    before = Generation.objects.count()
    response = api_post(client, apikey_create(user=owner, name="t")[1], chat_body())
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["type"] == error_type and error["code"] == code
    assert Generation.objects.count() == before  # nothing queued
    if status == 429:
        assert int(response["Retry-After"]) >= 1
    if error_type in ("rate_limit_exceeded", "insufficient_quota"):
        assert "resets at" in error["message"]
        kind = "requests" if code == "requests_per_minute" else "tokens"
        assert response[f"x-ratelimit-reset-{kind}"].endswith("s") and response[f"x-ratelimit-remaining-{kind}"] == "0"
        assert response[f"x-ratelimit-limit-{kind}"] == str(SCENARIOS[scenario][0][scenario])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_each_quota_is_enforced_on_the_chat(owner, scenario):
    chat_code, *_ = await database_sync_to_async(_prepare)(owner, scenario)
    conversation = await database_sync_to_async(Conversation.objects.create)(user=owner, model_name=SMOL,
                                                                             max_tokens=8)
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": conversation.id, "content": "Habari?",
                           "request_id": "q1"})
    event = (await events_until(ws, final=("error", "accepted"), timeout=20))[-1]
    await ws.disconnect()
    assert event["type"] == "error" and event["code"] == chat_code and event["request_id"] == "q1"
    assert event["message"]
    if chat_code in ("rate_limit_exceeded", "insufficient_quota"):
        assert "inaanza upya saa" in event["message"] or "resets at" in event["message"]
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_usage_under_the_quota_is_admitted_and_old_usage_leaves_the_minute(client, owner):
    give_plan(owner, requests_per_minute=2, tokens_per_minute=100)
    used(owner, tokens=500, ago=timedelta(seconds=61))
    used(owner, tokens=500, ago=timedelta(seconds=90))
    secret = apikey_create(user=owner, name="t")[1]
    admitted = generation_admit(user=owner, model_name=SMOL, kind="chat", source="api",
                                prompt=[{"role": "user", "content": "Habari?"}], params={"max_tokens": 4})
    assert admitted.generation.prompt_tokens == admitted.prompt_tokens > 0  # counted at once
    response = api_post(client, secret, chat_body())  # 2nd request this minute: over no quota yet…
    assert response.status_code != 429 or response.json()["error"]["code"] != "requests_per_minute"


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_a_users_override_beats_the_plan(owner, plans):
    from pawa.api.models import ApiLimits

    give_plan(owner, requests_per_minute=1)
    ApiLimits.objects.create(user=owner, requests_per_minute=3)
    for _ in range(3):
        generation_admit(user=owner, model_name=SMOL, kind="chat", source="web",
                         prompt=[{"role": "user", "content": "Habari?"}], params={"max_tokens": 4}, trim=True)
    with pytest.raises(GenerationRefused) as excinfo:
        generation_admit(user=owner, model_name=SMOL, kind="chat", source="web",
                         prompt=[{"role": "user", "content": "Habari?"}], params={"max_tokens": 4}, trim=True)
    assert excinfo.value.code == "rate_limit_exceeded" and excinfo.value.quota == "requests_per_minute"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("real_models", "plans")
def test_requests_per_minute_are_exact_under_a_parallel_burst(owner, idle_worker):
    give_plan(owner, requests_per_minute=3)
    barrier = threading.Barrier(8)
    outcomes = []

    def request():
        barrier.wait()
        try:
            generation_admit(user=owner, model_name=SMOL, kind="chat", source="api",
                             prompt=[{"role": "user", "content": "Habari?"}], params={"max_tokens": 4})
            outcomes.append("admitted")
        except GenerationRefused as exc:
            outcomes.append(exc.code)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["admitted"] * 3 + ["rate_limit_exceeded"] * 5
    assert Generation.objects.filter(user=owner).count() == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_a_keys_model_allow_list_is_enforced(client, owner):
    secret = apikey_create(user=owner, name="gemma only", allowed_models=[GEMMA])[1]
    response = api_post(client, secret, chat_body(SMOL))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert "key" in response.json()["error"]["message"]
    assert Generation.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("real_models", "plans")
def test_the_model_list_shows_only_what_the_key_and_the_plan_allow(client, owner):
    def listed(secret):
        response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 200
        return {model["id"] for model in response.json()["data"]}

    assert listed(apikey_create(user=owner, name="all")[1]) == {GEMMA, SMOL}
    assert listed(apikey_create(user=owner, name="gemma only", allowed_models=[GEMMA])[1]) == {GEMMA}
    give_plan(owner, allowed_models=[SMOL])
    assert listed(apikey_create(user=owner, name="plan")[1]) == {SMOL}


@pytest.mark.django_db
@pytest.mark.usefixtures("real_models")
def test_an_expired_key_is_a_401_that_says_expired(client, owner):
    secret = apikey_create(user=owner, name="old", expires_at=timezone.now() - timedelta(minutes=1))[1]
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_expired" and "expired" in response.json()["error"]["message"]
    wrong = client.get("/v1/models", HTTP_AUTHORIZATION="Bearer pawa-notarealkey")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models")
def test_a_pending_user_gets_403_from_the_api(client, owner):
    owner.approval_pending = True
    owner.save()
    secret = apikey_create(user=owner, name="t")[1]
    for response in (client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}"),
                     api_post(client, secret, chat_body())):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "approval_pending"
        assert "approval" in response.json()["error"]["message"]
    assert Generation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("idle_worker", "real_models")
async def test_a_pending_user_is_told_why_in_the_chat(owner):
    owner.approval_pending = True
    await database_sync_to_async(owner.save)()
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "content": "Habari?", "model": SMOL})
    event = (await events_until(ws, final=("error", "accepted"), timeout=20))[-1]
    await ws.disconnect()
    assert event["type"] == "error" and event["code"] == "approval_pending"
    assert "msimamizi" in event["message"] or "administrator" in event["message"]
    assert await database_sync_to_async(Conversation.objects.count)() == 0


@pytest.mark.django_db
def test_a_pending_user_sees_why_on_the_chat_page_and_dashboard(client, owner):
    owner.approval_pending = True
    owner.save()
    client.force_login(owner)
    for path in ("/chat/", "/dashboard/"):
        body = client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert "waiting for an administrator" in body or "inasubiri" in body


@pytest.mark.django_db
def test_sign_ups_wait_for_approval_when_required(client, settings):
    from django.contrib.auth import get_user_model

    settings.PAWA_REQUIRE_APPROVAL = True
    response = client.post("/accounts/signup/", {"email": "neema@example.com", "password1": "Mlima-Kilimanjaro-5895",
                                                 "password2": "Mlima-Kilimanjaro-5895"})
    assert response.status_code == 302
    assert get_user_model().objects.get(email="neema@example.com").approval_pending
    settings.PAWA_REQUIRE_APPROVAL = False
    client.post("/accounts/logout/")
    client.post("/accounts/signup/", {"email": "zawadi@example.com", "password1": "Mlima-Kilimanjaro-5895",
                                      "password2": "Mlima-Kilimanjaro-5895"})
    assert not get_user_model().objects.get(email="zawadi@example.com").approval_pending


@pytest.mark.django_db
@pytest.mark.usefixtures("plans")
def test_the_dashboard_shows_the_plan_and_remaining_quota(client, owner, plans, settings):
    settings.PAWA_DEFAULT_PLAN = ""  # the plan marked default: Free
    used(owner, tokens=1234)
    client.force_login(owner)
    body = client.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Free" in body
    assert "98,766 of 100,000 left" in body  # tokens per day
    statuses = {row["name"]: row for row in quota_status(owner)}
    assert statuses["tokens_per_day"]["remaining"] == 100_000 - 1234
    assert statuses["requests_per_minute"]["limit"] == 5


@pytest.mark.django_db
@pytest.mark.usefixtures("plans")
def test_the_seeded_plans(plans):
    assert [(p.slug, p.requests_per_minute) for p in Plan.objects.all()] == [
        ("free", 5), ("starter", 50), ("pro", 500), ("enterprise", None)]
    assert Plan.objects.get(is_default=True).slug == "free"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_the_openai_sdk_reads_a_used_up_quota_as_a_rate_limit_error(live_asgi, owner):
    import openai

    give_plan(owner, tokens_per_day=1000)
    used(owner, tokens=1000)
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=apikey_create(user=owner, name="sdk")[1],
                           max_retries=0, timeout=30)
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Habari?"}], max_tokens=4)
    error = excinfo.value
    assert error.code == "tokens_per_day" and error.type == "insufficient_quota"
    assert "resets at" in error.message
    assert int(error.response.headers["retry-after"]) >= 1
    assert error.response.headers["x-ratelimit-remaining-tokens"] == "0"


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_the_rate_limit_headers_of_an_admitted_request_are_the_plans_when_it_is_stricter(client, owner):
    give_plan(owner, requests_per_minute=5, tokens_per_minute=1000)  # the key's own limits are 60 and 20000
    used(owner, tokens=300)
    secret = apikey_create(user=owner, name="t")[1]
    listed = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")  # starts no generation
    # Remaining: the smaller of the plan's and the key's (an earlier test's key may have had this id).
    assert listed["x-ratelimit-limit-requests"] == "5" and int(listed["x-ratelimit-remaining-requests"]) <= 4
    response = api_post(client, secret, chat_body())
    assert response.status_code != 429, response.content  # admitted (the idle worker then writes nothing)
    assert response["x-ratelimit-limit-requests"] == "5"
    assert int(response["x-ratelimit-remaining-requests"]) <= 3  # one used before, this one
    assert response["x-ratelimit-limit-tokens"] == "1000" and int(response["x-ratelimit-remaining-tokens"]) <= 700
    assert 1 <= int(response["x-ratelimit-reset-requests"].removesuffix("s")) <= 60


@pytest.mark.django_db
@pytest.mark.usefixtures("idle_worker", "real_models", "plans")
def test_the_keys_limits_stay_in_the_headers_when_the_plan_is_unlimited(client, owner, plans):
    owner.plan = plans["enterprise"]
    owner.save(update_fields=["plan"])
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {apikey_create(user=owner, name='t')[1]}")
    assert response.status_code == 200, response.content
    assert response["x-ratelimit-limit-requests"] == "60" and response["x-ratelimit-limit-tokens"] == "20000"


def test_a_superuser_without_a_plan_is_not_held_to_the_sign_up_plan(owner, plans, settings):
    from pawa.plans.quotas import plan_for

    settings.PAWA_DEFAULT_PLAN = ""  # the fresh-install default: the plan marked default (Free)
    assert plan_for(owner).slug == "free"
    owner.is_superuser = True
    owner.save(update_fields=["is_superuser"])
    assert plan_for(owner).slug == "enterprise"
    owner.plan = plans["starter"]
    owner.save(update_fields=["plan"])
    assert plan_for(owner).slug == "starter"  # a plan given in the console still wins
