"""The chat page as people use it: on a phone, with long messages, unsaved settings, dialogs."""

import pytest

from pawa.chat.models import Conversation, Message
from tests.test_browser_chat import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def conversation(owner, real_models):
    return Conversation.objects.create(user=owner, model_name="gemma3-270m", temperature=0, max_tokens=160,
                                       system_prompt="Wewe ni PAWA, msaidizi anayejibu kwa Kiswahili.")


@pytest.fixture
def long_conversation(conversation):
    return add_turns(conversation, 30)


def add_turns(conversation, count):
    for number in range(count):
        Message.objects.create(conversation=conversation, role="user", content=f"Swali namba {number}?")
        Message.objects.create(conversation=conversation, role="assistant", status="complete",
                               content=f"Jibu namba {number}.\n\n" + "Maelezo marefu. " * 20)
    return conversation


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 1


def test_a_phone_opens_the_conversation_at_its_newest_message(page, login, owner, long_conversation):
    page.set_viewport_size(PHONE)
    login(page, owner)
    page.goto(f"/chat/{long_conversation.id}/")
    newest = page.locator(".message.assistant").last
    wait_for(lambda: in_view(page, newest.locator(".who")), timeout=5)
    assert in_view(page, page.get_by_label("Ujumbe"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The header, the sidebar and the composer leave most of the screen to the messages.
    area = page.locator("[data-messages]").bounding_box()
    assert area["height"] >= PHONE["height"] * 0.55


def test_a_phone_keeps_the_conversations_behind_a_menu_button(page, login, owner, conversation):
    page.set_viewport_size(PHONE)
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    sidebar = page.locator("[data-sidebar]")
    assert not sidebar.is_visible()
    toggle = page.locator("[data-sidebar-toggle]")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert sidebar.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    assert page.get_by_role("link", name=conversation.title or "Mazungumzo mapya").first.is_visible()
    page.keyboard.press("Escape")
    assert not sidebar.is_visible()
    assert page.evaluate("document.activeElement.hasAttribute('data-sidebar-toggle')")


def test_the_desktop_shows_the_sidebar_without_a_menu_button(page, login, owner, conversation):
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    assert page.locator("[data-sidebar]").is_visible()
    assert not page.locator("[data-sidebar-toggle]").is_visible()


def test_a_streamed_answer_is_followed_with_an_inline_cursor_until_the_reader_scrolls_up(
    page, login, owner, conversation, celery_worker
):
    long_conversation = add_turns(conversation, 5)  # a screen of history, a short prompt
    long_conversation.model_name = "smollm2-135m-instruct"  # it writes at length
    long_conversation.max_tokens = 400
    long_conversation.save()
    page.set_viewport_size(PHONE)
    login(page, owner)
    page.goto(f"/chat/{long_conversation.id}/")
    messages = page.locator("[data-messages]")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 40"
    page.get_by_label("Ujumbe").fill("Write a very long story about a lion and a mouse, in many chapters.")
    page.keyboard.press("Enter")
    streaming = page.locator(".message.assistant.streaming")
    wait_for(lambda: streaming.count() == 1 and len(streaming.locator(".body").inner_text()) > 30, timeout=60)
    wait_for(lambda: messages.evaluate(at_bottom), timeout=2)
    # The cursor is inside the last block of text, not a line of its own below it.
    assert page.evaluate("""() => {
      const cursor = document.querySelector('.message.assistant.streaming .stream-cursor');
      return cursor !== null && !cursor.parentElement.classList.contains('body');
    }""")
    messages.hover()
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(150)
    top = messages.evaluate("el => el.scrollTop")
    page.wait_for_timeout(600)
    if streaming.count():  # still writing: the reader's place is kept
        assert abs(messages.evaluate("el => el.scrollTop") - top) < 2
    assert not messages.evaluate(at_bottom)
    page.get_by_role("button", name="Simamisha").click()


def test_a_message_over_the_limit_keeps_the_text_and_counts_characters(page, login, owner, conversation,
                                                                       settings):
    settings.PAWA_MAX_MESSAGE_CHARS = 100
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    box = page.get_by_label("Ujumbe")
    counter = page.locator("[data-counter]")
    box.fill("a" * 50)
    assert not counter.is_visible()
    box.fill("a" * 90)
    assert counter.inner_text() == "Herufi 90 kati ya 100"
    text = "Habari " + "b" * 120
    box.fill(text)
    assert "over" in counter.get_attribute("class")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert box.input_value() == text
    assert "mrefu mno" in page.locator("[data-chat-status]").inner_text()
    assert Message.objects.filter(conversation=conversation).count() == 0


def test_a_message_the_server_refuses_stays_in_the_box(page, login, owner, conversation):
    # No worker runs: the server refuses the message after the page sent it.
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    box = page.get_by_label("Ujumbe")
    box.fill("Habari za leo?")
    page.keyboard.press("Enter")
    wait_for(lambda: page.locator("[data-chat-status]").inner_text(), timeout=15)
    assert box.input_value() == "Habari za leo?"


def test_unsaved_settings_apply_to_the_next_message(page, login, owner, conversation, idle_worker):
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_role("button", name="Mipangilio").click()
    page.get_by_label("Maelekezo ya mfumo").fill("Jibu kwa neno moja tu.")
    page.locator("#setting-temperature").fill("0.3")
    page.locator("#setting-max-tokens").fill("40")
    page.get_by_label("Ujumbe").fill("Habari?")
    page.keyboard.press("Enter")
    wait_for(lambda: page.locator(".message.assistant").count() == 1, timeout=15)
    conversation.refresh_from_db()
    assert (conversation.system_prompt, conversation.temperature, conversation.max_tokens) == (
        "Jibu kwa neno moja tu.", 0.3, 40)
    answer = Message.objects.get(conversation=conversation, role="assistant")
    assert answer.generation.prompt[0] == {"role": "system", "content": "Jibu kwa neno moja tu."}
    assert page.locator("[data-settings-status]").inner_text() == "Imehifadhiwa"
    assert page.get_by_label("Ujumbe").input_value() == ""


def test_switching_the_model_brings_its_own_system_prompt(page, login, owner, conversation, real_models):
    conversation.system_prompt = real_models.get("gemma3-270m").default_system_prompt
    conversation.save()
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_role("button", name="Mipangilio").click()
    page.get_by_label("Modeli").select_option("smollm2-135m-instruct")
    expected = real_models.get("smollm2-135m-instruct").default_system_prompt
    assert page.get_by_label("Maelekezo ya mfumo").input_value() == expected
    # A prompt the user wrote is kept.
    page.get_by_label("Maelekezo ya mfumo").fill("Maelekezo yangu.")
    page.get_by_label("Modeli").select_option("gemma3-270m")
    assert page.get_by_label("Maelekezo ya mfumo").input_value() == "Maelekezo yangu."


def test_rename_uses_a_dialog_without_the_cut_mark(page, login, owner, conversation):
    conversation.title = "Swali refu kuhusu historia ya…"
    conversation.save()
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.on("dialog", lambda dialog: pytest.fail("a native dialog opened"))
    page.get_by_role("button", name="Badilisha jina").click()
    field = page.locator("[data-rename-input]")
    assert field.is_visible() and field.input_value() == "Swali refu kuhusu historia ya"
    field.fill("Historia ya Pwani")
    page.keyboard.press("Enter")
    wait_for(lambda: page.locator("[data-title]").inner_text() == "Historia ya Pwani", timeout=5)
    conversation.refresh_from_db()
    assert conversation.title == "Historia ya Pwani"


def test_delete_asks_in_the_page_first(page, login, owner, conversation):
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.on("dialog", lambda dialog: pytest.fail("a native dialog opened"))
    page.get_by_role("button", name="Futa").first.click()
    page.locator("[data-delete-dialog]").get_by_role("button", name="Ghairi").click()
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    page.get_by_role("button", name="Futa").first.click()
    page.locator("[data-confirm-delete]").click()
    page.wait_for_url("**/chat/")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_stop_by_keyboard_returns_focus_to_the_message_box(page, login, owner, conversation, idle_worker):
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Habari?")
    page.keyboard.press("Enter")
    stop = page.get_by_role("button", name="Simamisha")
    wait_for(lambda: stop.is_visible(), timeout=15)
    stop.focus()
    page.keyboard.press("Enter")
    wait_for(lambda: page.locator(".message.assistant.streaming").count() == 0, timeout=15)
    assert page.evaluate("document.activeElement.id") == "composer-input"
