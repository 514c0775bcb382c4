"""Conversations and messages: services, selectors and the chat page's JSON endpoints."""

import json

import pytest

from pawa.chat import services
from pawa.chat.models import Conversation, Message
from pawa.generation.models import Generation

# A registered worker that takes nothing: answers are admitted and stay queued.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("idle_worker")]


@pytest.fixture
def conversation(owner, real_models):
    return services.conversation_create(user=owner, model_name="smollm2-135m-instruct")


def finish(answer: Message, text="Dodoma."):
    Generation.objects.filter(id=answer.generation_id).update(status="complete", text=text)
    Message.objects.filter(id=answer.id).update(status="complete", content=text)


def test_titles_come_from_the_first_message_without_a_model_call():
    assert services.title_from("  Habari   ya **leo**?\nNa kesho") == "Habari ya leo? Na kesho"
    long = "neno " * 40
    title = services.title_from(long)
    assert len(title) <= 61 and title.endswith("…") and not title.endswith(" …")


def test_a_conversation_starts_with_the_model_card_defaults(conversation):
    assert conversation.model_name == "smollm2-135m-instruct"
    assert conversation.system_prompt.startswith("You are PAWA")


def test_send_saves_the_question_before_the_answer_is_generated(conversation):
    question, answer = services.message_send(conversation=conversation, content="What is 2+2?")
    assert question.role == "user" and question.content == "What is 2+2?"
    assert answer.role == "assistant" and answer.status == "queued"
    generation = answer.generation
    assert generation.prompt[0]["role"] == "system"
    assert generation.prompt[-1] == {"role": "user", "content": "What is 2+2?"}
    assert generation.params == {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "repetition_penalty": 1.1,
                                 "max_tokens": conversation.max_tokens, "stop": [], "seed": None}


def test_a_second_answer_while_one_is_written_is_refused(conversation):
    services.message_send(conversation=conversation, content="One")
    with pytest.raises(services.ChatError):
        services.message_send(conversation=conversation, content="Two")


def test_each_user_has_a_limit_of_concurrent_answers(owner, real_models, settings):
    settings.PAWA_MAX_CONCURRENT_GENERATIONS = 1
    first = services.conversation_create(user=owner)
    second = services.conversation_create(user=owner)
    services.message_send(conversation=first, content="One")
    with pytest.raises(services.ChatError, match="1") as excinfo:
        services.message_send(conversation=second, content="Two")
    assert excinfo.value.code == "concurrency_limit"
    assert not second.messages.exists()  # the refused question is not kept either


def test_a_full_queue_refuses_the_chat_too(conversation, settings):
    from pawa.generation.redis import sync_client

    settings.PAWA_MAX_QUEUE = 1
    sync_client().zadd(settings.PAWA_QUEUE_KEY, {"someone-else": 1})
    try:
        with pytest.raises(services.ChatError, match="foleni|mengi mno") as excinfo:
            services.message_send(conversation=conversation, content="Habari?")
    finally:
        sync_client().zrem(settings.PAWA_QUEUE_KEY, "someone-else")
    assert excinfo.value.code == "queue_full"


def test_the_chat_samples_with_the_api_defaults(conversation):
    from pawa.generation.admission import SAMPLING_DEFAULTS

    _, answer = services.message_send(conversation=conversation, content="Habari?")
    params = answer.generation.params
    assert params["top_p"] == SAMPLING_DEFAULTS["top_p"] and params["top_k"] == SAMPLING_DEFAULTS["top_k"]
    assert params["repetition_penalty"] == SAMPLING_DEFAULTS["repetition_penalty"]


def test_a_conversation_of_4000_messages_is_answered_with_its_oldest_turns_left_out_visibly(conversation):
    import time

    Message.objects.bulk_create(
        Message(conversation=conversation, role=role, content=f"Ujumbe wa {index // 2}: habari za leo?")
        for index in range(4000) for role in ["user" if index % 2 == 0 else "assistant"]
    )
    started = time.perf_counter()
    _, answer = services.message_send(conversation=conversation, content="Na sasa?")
    assert time.perf_counter() - started < 10  # was 5.5 minutes
    assert answer.dropped_messages > 3000
    assert answer.as_dict()["dropped_messages"] == answer.dropped_messages
    prompt = answer.generation.prompt
    assert prompt[0]["role"] == "system" and prompt[1]["role"] == "user"
    assert prompt[-1] == {"role": "user", "content": "Na sasa?"}
    assert len(prompt) == 1 + 4001 - answer.dropped_messages


def test_a_short_conversation_leaves_nothing_out(conversation):
    _, answer = services.message_send(conversation=conversation, content="Habari?")
    assert answer.dropped_messages == 0


def test_regenerate_replaces_the_last_answer(conversation):
    _, answer = services.message_send(conversation=conversation, content="Capital of Tanzania?")
    finish(answer)
    new = services.message_regenerate(conversation=conversation)
    assert not Message.objects.filter(id=answer.id).exists()
    assert list(conversation.messages.values_list("role", flat=True)) == ["user", "assistant"]
    assert new.generation.prompt[-1]["content"] == "Capital of Tanzania?"


def test_edit_replaces_the_later_turns(conversation):
    q1, a1 = services.message_send(conversation=conversation, content="First question")
    finish(a1, "First answer")
    q2, a2 = services.message_send(conversation=conversation, content="Second question")
    finish(a2, "Second answer")
    edited, answer = services.message_edit(message=q1, content="Edited question")
    assert edited.content == "Edited question"
    assert list(conversation.messages.values_list("content", flat=True)) == ["Edited question", ""]
    assert answer.generation.prompt[-1] == {"role": "user", "content": "Edited question"}
    assert all(m["content"] != "First answer" for m in answer.generation.prompt)


def test_history_keeps_finished_answers_and_skips_failed_ones(conversation):
    _, a1 = services.message_send(conversation=conversation, content="Q1")
    finish(a1, "A1")
    _, a2 = services.message_send(conversation=conversation, content="Q2")
    Generation.objects.filter(id=a2.generation_id).update(status="error")
    Message.objects.filter(id=a2.id).update(status="error")
    _, a3 = services.message_send(conversation=conversation, content="Q3")
    contents = [m["content"] for m in a3.generation.prompt[1:]]
    assert contents == ["Q1", "A1", "Q2", "Q3"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": 3}, "Kiwango cha ubunifu"),
        ({"max_tokens": 0}, "Idadi ya juu ya tokeni"),
        ({"model_name": "nope"}, "haijasakinishwa"),
        ({"system_prompt": "x" * 5000}, "marefu mno"),
    ],
)
def test_settings_are_validated(conversation, changes, message):
    with pytest.raises(services.ChatError, match=message):
        services.conversation_update_settings(conversation=conversation, **changes)


def test_search_finds_titles_and_message_text(owner, conversation):
    services.message_send(conversation=conversation, content="Tell me about Kilimanjaro")
    other = services.conversation_create(user=owner)
    other.title = "Mapishi ya pilau"
    other.save()
    assert list(Conversation.objects.for_user(owner).search("kilimanjaro")) == [conversation]
    assert list(Conversation.objects.for_user(owner).search("PILAU")) == [other]


# HTTP ------------------------------------------------------------------------------------------

def test_the_chat_page_needs_a_login(client):
    response = client.get("/chat/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_demo_leads_to_the_chat(client, owner):
    client.force_login(owner)
    assert client.get("/demo/")["Location"] == "/chat/"


def test_the_page_says_when_earlier_messages_were_left_out(client, owner, conversation):
    _, answer = services.message_send(conversation=conversation, content="Habari?")
    Message.objects.filter(id=answer.id).update(dropped_messages=12)
    client.force_login(owner)
    body = client.get(f"/chat/{conversation.id}/").content.decode()
    assert '"dropped_messages": 12' in body
    assert "Jumbe za awali ziliachwa" in body  # the notice the page shows on that answer


def test_the_chat_page_shows_the_conversation(client, owner, conversation):
    services.message_send(conversation=conversation, content="Habari <script>alert(1)</script>")
    client.force_login(owner)
    body = client.get(f"/chat/{conversation.id}/").content.decode()
    assert "Habari \\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E" in body  # JSON-escaped, never HTML
    assert "<script>alert(1)</script>" not in body
    assert "Simamisha" in body and "Tuma" in body  # Swahili UI


def test_outsiders_get_404_for_pages_and_endpoints(client, outsider, conversation):
    client.force_login(outsider)
    assert client.get(f"/chat/{conversation.id}/").status_code == 404
    assert client.get(f"/chat/api/conversations/{conversation.id}/").status_code == 404
    assert client.patch(f"/chat/api/conversations/{conversation.id}/", "{}", content_type="application/json").status_code == 404
    assert client.delete(f"/chat/api/conversations/{conversation.id}/").status_code == 404
    assert Conversation.objects.filter(id=conversation.id).exists()
    assert client.get("/chat/api/conversations/").json() == {"conversations": []}


def test_rename_settings_and_delete_through_the_endpoints(client, owner, conversation):
    client.force_login(owner)
    url = f"/chat/api/conversations/{conversation.id}/"
    response = client.patch(url, json.dumps({"title": "Safari", "temperature": "0.2", "max_tokens": 64}),
                            content_type="application/json")
    assert response.status_code == 200
    data = response.json()
    assert data["title"] == "Safari" and data["temperature"] == 0.2 and data["max_tokens"] == 64
    bad = client.patch(url, json.dumps({"temperature": "hot"}), content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]
    broken = client.patch(url, "{not json", content_type="application/json")
    assert broken.status_code == 400
    listing = client.get("/chat/api/conversations/?q=safari").json()["conversations"]
    assert [c["title"] for c in listing] == ["Safari"]
    assert client.delete(url).json() == {"deleted": True}
    assert not Conversation.objects.filter(id=conversation.id).exists()


def test_create_through_the_endpoint(client, owner, real_models):
    client.force_login(owner)
    response = client.post("/chat/api/conversations/", json.dumps({"model": "gemma3-270m"}), content_type="application/json")
    assert response.status_code == 201 and response.json()["model"] == "gemma3-270m"
    refused = client.post("/chat/api/conversations/", json.dumps({"model": "nope"}), content_type="application/json")
    assert refused.status_code == 400


def test_editing_the_first_question_makes_a_new_automatic_title(conversation):
    question, answer = services.message_send(conversation=conversation, content="Mji mkuu wa Ghana ni upi?")
    finish(answer)
    services.message_edit(message=question, content="Mto mrefu zaidi duniani ni upi?")
    conversation.refresh_from_db()
    assert conversation.title == "Mto mrefu zaidi duniani ni upi?"


def test_editing_keeps_a_title_the_user_chose(conversation):
    question, answer = services.message_send(conversation=conversation, content="Mji mkuu wa Ghana ni upi?")
    finish(answer)
    services.conversation_rename(conversation=conversation, title="Jiografia")
    services.message_edit(message=question, content="Mto mrefu zaidi duniani ni upi?")
    conversation.refresh_from_db()
    assert conversation.title == "Jiografia"


def test_switching_the_model_brings_its_default_system_prompt(conversation, real_models):
    services.conversation_update_settings(conversation=conversation, model_name="gemma3-270m")
    assert conversation.system_prompt == real_models.get("gemma3-270m").default_system_prompt


def test_switching_the_model_keeps_a_system_prompt_the_user_wrote(conversation):
    services.conversation_update_settings(conversation=conversation, system_prompt="Jibu kwa ufupi.")
    services.conversation_update_settings(conversation=conversation, model_name="gemma3-270m")
    assert conversation.system_prompt == "Jibu kwa ufupi."


def test_the_chat_says_when_a_conversation_uses_a_base_model(client, owner, real_models):
    client.force_login(owner)
    base = services.conversation_create(user=owner, model_name="gemma3-270m")
    instruct = services.conversation_create(user=owner, model_name="smollm2-135m-instruct")
    note = 'class="base-model-note muted" data-base-note>'
    body = client.get(f"/chat/{base.id}/").content.decode()
    assert note in body and "/docs/models/#instruct" in body
    assert 'data-base-note hidden>' in client.get(f"/chat/{instruct.id}/").content.decode()
    assert 'id="instruct"' in client.get("/docs/models/").content.decode()


def test_the_home_page_does_not_promise_more_than_small_models_give(client):
    body = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "often wrong" in body and "poem" not in body
