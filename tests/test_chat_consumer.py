"""The chat websocket against the real Redis, a real Celery worker and a real installed model."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from inference import relay
from pawa.asgi import application
from pawa.chat.models import Conversation, Message
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client
from tests.chat_helpers import connect, events_until, text_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def smol_conversation(owner, real_models):
    return Conversation.objects.create(user=owner, model_name="smollm2-135m-instruct", temperature=0,
                                       max_tokens=24, system_prompt="You are a helpful assistant.")


@pytest.fixture
def gemma_conversation(owner, real_models):
    return Conversation.objects.create(user=owner, model_name="gemma3-270m", temperature=0, max_tokens=300)


async def test_anonymous_connections_are_closed():
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://127.0.0.1")])
    communicator.scope["user"] = AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected
    await communicator.disconnect()  # let the consumer (and its channel layer reader) finish


async def test_foreign_origins_are_refused(owner):
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_it_streams_tokens_and_saves_the_answer(owner, smol_conversation, celery_worker):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id,
                           "content": "What is the capital of Tanzania?", "request_id": "r1"})
    accepted = await ws.receive_json_from(timeout=10)
    assert accepted["type"] == "accepted" and accepted["request_id"] == "r1"
    assert accepted["question"]["content"] == "What is the capital of Tanzania?"
    events = await events_until(ws)
    assert events[-1]["type"] == "done", events[-1]
    deltas = [e for e in events if e["type"] == "delta"]
    assert len(deltas) >= 2
    assert all(e["id"] for e in deltas)
    answer = await database_sync_to_async(Message.objects.select_related("generation").get)(id=accepted["answer"]["id"])
    assert answer.content == text_of(events) and "Dodoma" in answer.content
    assert answer.status == "complete"
    assert answer.generation.completion_tokens > 0 and answer.generation.time_to_first_token_ms > 0
    assert events[-1]["completion_tokens"] == answer.generation.completion_tokens
    conversation = await database_sync_to_async(Conversation.objects.get)(id=smol_conversation.id)
    assert conversation.title == "What is the capital of Tanzania?"
    await ws.disconnect()


async def test_a_first_message_creates_the_conversation(owner, real_models, celery_worker):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "content": "Habari!", "model": "smollm2-135m-instruct"})
    accepted = await ws.receive_json_from(timeout=10)
    assert accepted["conversation"]["title"] == "Habari!"
    assert accepted["conversation"]["model"] == "smollm2-135m-instruct"
    await events_until(ws)
    await ws.disconnect()


async def test_another_users_conversation_is_not_found(outsider, smol_conversation):
    ws = await connect(outsider)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "hi"})
    event = await ws.receive_json_from(timeout=10)
    assert event["type"] == "error" and event["code"] == "not_found"
    count = await database_sync_to_async(Message.objects.count)()
    assert count == 0
    await ws.disconnect()


async def test_stop_keeps_the_partial_answer(owner, gemma_conversation, celery_worker):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": gemma_conversation.id,
                           "content": "Niandikie hadithi ndefu kuhusu simba na panya."})
    accepted = await ws.receive_json_from(timeout=10)
    generation_id = accepted["answer"]["generation_id"]
    before = await events_until(ws, stop_after=lambda ev: sum(e["type"] == "delta" for e in ev) >= 2)
    await ws.send_json_to({"type": "stop", "generation_id": generation_id})
    after = await events_until(ws, timeout=10)
    assert after[-1]["type"] == "done" and after[-1]["status"] == "stopped"
    message = await database_sync_to_async(Message.objects.select_related("generation").get)(id=accepted["answer"]["id"])
    assert message.status == "stopped"
    assert message.content == text_of(before + after) and message.content
    assert message.generation.completion_tokens < 300
    await ws.disconnect()


async def test_a_second_answer_in_the_same_conversation_is_refused(owner, gemma_conversation, celery_worker):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": gemma_conversation.id, "content": "Hadithi ndefu tafadhali"})
    accepted = await ws.receive_json_from(timeout=10)
    await ws.send_json_to({"type": "send", "conversation_id": gemma_conversation.id, "content": "Na nyingine"})
    refused = await events_until(ws, final=("error",), timeout=20)
    assert refused[-1]["code"] == "refused"
    assert "Wait for it or stop it" in refused[-1]["message"] or "Subiri" in refused[-1]["message"]
    await ws.send_json_to({"type": "stop", "generation_id": accepted["answer"]["generation_id"]})
    await events_until(ws)
    await ws.disconnect()


async def test_resume_continues_without_gap_or_duplicate(owner, gemma_conversation, celery_worker):
    first = await connect(owner)
    await first.send_json_to({"type": "send", "conversation_id": gemma_conversation.id,
                              "content": "Eleza historia ya Zanzibar kwa kirefu."})
    accepted = await first.receive_json_from(timeout=10)
    seen = await events_until(first, stop_after=lambda ev: sum(e["type"] == "delta" for e in ev) >= 3)
    await first.disconnect()  # the page is closed mid-answer
    await asyncio.sleep(0.5)
    last_id = [e for e in seen if e.get("id")][-1]["id"]
    second = await connect(owner)
    await second.send_json_to({"type": "resume", "generation_id": accepted["answer"]["generation_id"],
                               "last_id": last_id})
    rest = await events_until(second, timeout=90)
    assert rest[-1]["type"] == "done"
    message = await database_sync_to_async(Message.objects.get)(id=accepted["answer"]["id"])
    assert text_of(seen) + text_of(rest) == message.content
    await second.disconnect()


async def test_two_tabs_see_the_same_stream(owner, smol_conversation, celery_worker):
    tab1, tab2 = await connect(owner), await connect(owner)
    await tab1.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Say hello."})
    accepted = await tab1.receive_json_from(timeout=10)
    await tab2.send_json_to({"type": "resume", "generation_id": accepted["answer"]["generation_id"], "last_id": "0-0"})
    one, two = await asyncio.gather(events_until(tab1), events_until(tab2))
    assert text_of(one) == text_of(two) != ""
    await tab1.disconnect()
    await tab2.disconnect()


async def test_a_queued_answer_shows_its_position(owner, smol_conversation, idle_worker):
    # The only worker takes nothing: the answer waits in the queue.
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Hello"})
    accepted = await ws.receive_json_from(timeout=10)
    event = await ws.receive_json_from(timeout=5)
    assert event["type"] == "queued" and event["position"] >= 1 and "wait_seconds" in event
    await ws.send_json_to({"type": "stop", "generation_id": accepted["answer"]["generation_id"]})
    final = await events_until(ws, timeout=10)
    assert final[-1]["status"] == "stopped"
    await ws.disconnect()


async def test_a_dead_worker_turns_into_an_error_with_the_partial_answer_kept(owner, smol_conversation):
    @database_sync_to_async
    def running_generation():
        generation = Generation.objects.create(user=owner, model_name="smollm2-135m-instruct", prompt=[],
                                               status=Generation.Status.RUNNING)
        message = Message.objects.create(conversation=smol_conversation, role="assistant",
                                         generation=generation, status="running")
        client = sync_client()
        key = relay.stream_key(str(generation.id))
        client.xadd(key, relay.encode({"type": "start"}))
        client.xadd(key, relay.encode({"type": "delta", "text": "Habari "}))
        client.xadd(key, relay.encode({"type": "delta", "text": "za asubuhi"}))
        # The worker died: no heartbeat ("alive" key) and no final event.
        return generation, message

    generation, message = await running_generation()
    ws = await connect(owner)
    await ws.send_json_to({"type": "resume", "generation_id": str(generation.id), "last_id": "0-0"})
    started = asyncio.get_running_loop().time()
    events = await events_until(ws, timeout=10)
    assert asyncio.get_running_loop().time() - started < 10
    assert events[-1]["type"] == "error" and events[-1]["code"] == "interrupted"
    await database_sync_to_async(message.refresh_from_db)()
    assert message.status == "interrupted" and message.content == "Habari za asubuhi"
    await ws.disconnect()


async def test_bad_requests_get_clear_errors(owner, smol_conversation):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "   "})
    assert (await ws.receive_json_from(timeout=5))["code"] == "refused"
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "x" * 9000})
    event = await ws.receive_json_from(timeout=5)
    assert event["code"] == "refused" and "9000" in event["message"]
    await ws.send_json_to({"type": "dance"})
    assert (await ws.receive_json_from(timeout=5))["type"] == "error"
    await ws.send_to(text_data="not json")
    assert (await ws.receive_json_from(timeout=5))["type"] == "error"
    await ws.send_json_to({"type": "stop", "generation_id": "not-a-uuid"})
    assert (await ws.receive_json_from(timeout=5))["code"] == "not_found"
    await ws.disconnect()


async def test_a_second_tab_hears_about_a_new_answer_and_follows_it(owner, smol_conversation, celery_worker):
    tab1, tab2 = await connect(owner), await connect(owner)
    await tab2.send_json_to({"type": "watch", "conversation_id": smol_conversation.id})
    await asyncio.sleep(0.2)
    await tab1.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Say hello."})
    accepted = await tab1.receive_json_from(timeout=10)
    changed = await tab2.receive_json_from(timeout=10)
    assert changed == {"type": "conversation_changed", "conversation_id": smol_conversation.id,
                       "generation_id": accepted["answer"]["generation_id"]}
    await tab2.send_json_to({"type": "resume", "generation_id": changed["generation_id"], "last_id": "0-0"})
    one, two = await asyncio.gather(events_until(tab1), events_until(tab2))
    assert text_of(one) == text_of(two) != ""
    await tab1.disconnect()
    await tab2.disconnect()


async def test_watching_another_users_conversation_is_refused(outsider, smol_conversation):
    ws = await connect(outsider)
    await ws.send_json_to({"type": "watch", "conversation_id": smol_conversation.id})
    assert (await ws.receive_json_from(timeout=5))["code"] == "not_found"
    await ws.disconnect()


async def test_without_a_worker_the_page_is_told_at_once_and_nothing_is_saved(owner, smol_conversation):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Habari?",
                           "request_id": "r1"})
    event = await ws.receive_json_from(timeout=10)
    assert event["type"] == "error" and event["code"] == "no_worker" and event["request_id"] == "r1"
    assert "mfanyakazi wa modeli" in event["message"]  # in the page's language (Swahili by default)
    assert await database_sync_to_async(Message.objects.count)() == 0
    await ws.disconnect()


@pytest.mark.parametrize("frame", [
    {"text_data": ""},
    {"bytes_data": b"\x00\x01binary"},
    {"text_data": "NaN"},
    {"text_data": "[1, 2]"},
    {"text_data": '"just a string"'},
    {"text_data": '{"type": ["send"]}'},
    {"text_data": '{"type": "send", "content": 5}'},
    {"text_data": '{"type": "send", "content": true}'},
    {"text_data": '{"type": "send", "content": ["a"]}'},
    {"text_data": '{"type": "send", "content": "hi", "conversation_id": {"a": 1}}'},
    {"text_data": '{"type": "send", "content": "x\\ud800y"}'},
    {"text_data": "[" * 100000 + "]" * 100000},
    {"text_data": '{"type": "stop"}'},
    {"text_data": '{"type": "edit", "message_id": true, "content": "x"}'},
])
async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_usable(owner, smol_conversation, frame):
    ws = await connect(owner)
    if frame.get("text_data") == "":
        await ws.send_input({"type": "websocket.receive", "text": ""})
    else:
        await ws.send_to(**frame)
    event = await ws.receive_json_from(timeout=10)
    assert event["type"] == "error" and event["code"] == "bad_frame" and event["message"]
    await ws.send_json_to({"type": "watch", "conversation_id": smol_conversation.id, "request_id": "ok"})
    await ws.send_json_to({"type": "watch", "conversation_id": 10**9, "request_id": "still-here"})
    event = await ws.receive_json_from(timeout=10)
    assert event["code"] == "not_found" and event["request_id"] == "still-here"
    await ws.disconnect()


async def test_a_deactivated_users_socket_closes_and_its_answers_stop(owner, smol_conversation, idle_worker):
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Habari"})
    accepted = await ws.receive_json_from(timeout=10)

    def deactivate():
        owner.is_active = False
        owner.save()

    await database_sync_to_async(deactivate)()
    closed = await ws.receive_output(timeout=10)
    while closed["type"] != "websocket.close":
        closed = await ws.receive_output(timeout=10)
    assert closed["code"] == 4401
    generation = await database_sync_to_async(Generation.objects.get)(id=accepted["answer"]["generation_id"])
    assert generation.status == "stopped"


async def test_a_request_after_the_user_was_deactivated_closes_the_socket(owner, smol_conversation):
    ws = await connect(owner)
    await database_sync_to_async(type(owner).objects.filter(pk=owner.pk).update)(is_active=False)
    await ws.send_json_to({"type": "send", "conversation_id": smol_conversation.id, "content": "Habari"})
    closed = await ws.receive_output(timeout=10)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401
    count = await database_sync_to_async(Message.objects.count)()
    assert count == 0


async def _socket_with_session(user):
    from django.conf import settings as django_settings
    from django.test import Client

    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    ws = WebsocketCommunicator(application, "/ws/chat/", headers=[
        (b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie.encode())])
    connected, _ = await ws.connect()
    assert connected
    return client, ws


async def _closed(ws):
    output = await ws.receive_output(timeout=10)
    while output["type"] != "websocket.close":
        output = await ws.receive_output(timeout=10)
    return output


async def test_logging_out_closes_that_sessions_socket_only(owner):
    client, ws = await _socket_with_session(owner)
    _other_client, other = await _socket_with_session(owner)
    await database_sync_to_async(client.post)("/accounts/logout/")
    assert (await _closed(ws))["code"] == 4401
    assert await other.receive_nothing(timeout=0.5)
    await other.disconnect()


async def test_a_password_change_closes_every_socket_of_the_user(owner, password):
    client, ws = await _socket_with_session(owner)
    response = await database_sync_to_async(client.post)("/accounts/password/change/", {
        "oldpassword": password, "password1": "Mpya-Kabisa-7731", "password2": "Mpya-Kabisa-7731"})
    assert response.status_code in (200, 302)
    assert (await _closed(ws))["code"] == 4401

async def test_settings_sent_with_a_message_are_applied_first(owner, real_models, idle_worker):
    from pawa.chat import services

    conversation = await database_sync_to_async(services.conversation_create)(user=owner, model_name="gemma3-270m")
    communicator = await connect(owner)
    await communicator.send_json_to({
        "type": "send", "conversation_id": conversation.id, "content": "Habari?", "request_id": "r1",
        "settings": {"system_prompt": "Jibu kwa neno moja.", "temperature": "0.2", "max_tokens": 30},
    })
    accepted = await communicator.receive_json_from(timeout=10)
    assert accepted["type"] == "accepted"
    assert accepted["settings"]["system_prompt"] == "Jibu kwa neno moja."
    await database_sync_to_async(conversation.refresh_from_db)()
    assert (conversation.temperature, conversation.max_tokens) == (0.2, 30)
    await communicator.disconnect()


async def test_bad_settings_refuse_the_message_and_save_nothing(owner, real_models, idle_worker):
    from pawa.chat import services

    conversation = await database_sync_to_async(services.conversation_create)(user=owner, model_name="gemma3-270m")
    communicator = await connect(owner)
    await communicator.send_json_to({
        "type": "send", "conversation_id": conversation.id, "content": "Habari?", "request_id": "r1",
        "settings": {"temperature": "moto"},
    })
    event = await communicator.receive_json_from(timeout=10)
    assert event["type"] == "error" and event["code"] == "refused"
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0
    await communicator.disconnect()


async def test_a_page_that_left_mid_answer_is_not_an_error(owner, caplog, monkeypatch):
    """uvicorn raises ClientDisconnected when a frame is sent after a reload: a debug line only."""
    from uvicorn.protocols.utils import ClientDisconnected

    from pawa.chat.consumers import ChatConsumer

    async def frames(*args, **kwargs):
        yield "1-0", {"type": "delta", "text": "Habari"}
        yield "2-0", {"type": "delta", "text": " yako"}

    async def gone(payload):
        raise ClientDisconnected()

    monkeypatch.setattr(relay, "follow", frames)
    consumer = ChatConsumer()
    consumer.redis, consumer.language, consumer.relays = None, "sw", {}
    consumer.send_json = gone
    with caplog.at_level("DEBUG", logger="pawa.chat.consumers"):
        consumer.follow("g1", "0-0")
        task = consumer.relays["g1"]
        await task
    assert task.exception() is None
    assert [r for r in caplog.records if r.levelno >= 30] == []
    assert any("page left" in r.getMessage() for r in caplog.records)
