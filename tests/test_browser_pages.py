"""Every main page fits the screen, on a phone and on a desktop, in both languages."""

import pytest

from pawa.api.keys import apikey_create
from pawa.api.models import ApiUsage
from pawa.chat.models import Conversation, Message

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PUBLIC = ["/", "/docs/", "/docs/getting-started/", "/docs/api/", "/docs/models/", "/docs/quantization/",
          "/privacy/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
SIGNED_IN = ["/dashboard/", "/dashboard/usage/", "/dashboard/keys/", "/chat/"]
STAFF = ["/console/", "/console/users/", "/console/plans/", "/console/keys/", "/console/conversations/",
         "/console/log/"]


@pytest.fixture
def history(owner, real_models):
    key, _secret = apikey_create(user=owner, name="Programu ya simu ya mkononi ya shamba")
    for number in range(3):
        ApiUsage.objects.create(api_key=key, user=owner, endpoint="/v1/chat/completions", model_name="gemma3-270m",
                                status_code=200, prompt_tokens=120, completion_tokens=345, latency_ms=1234.5)
    conversation = Conversation.objects.create(user=owner, model_name="gemma3-270m", title="Historia ya Kilwa")
    Message.objects.create(conversation=conversation, role="user", content="Eleza historia ya Kilwa Kisiwani.")
    Message.objects.create(conversation=conversation, role="assistant", status="complete",
                           content="```\n" + "mstari_mrefu_sana_" * 30 + "\n```\n\n| a | b | c |\n|---|---|---|\n| 1 | 2 | 3 |")
    return conversation


def page_width(page) -> int:
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


def widest(page, width) -> list[str]:
    """The elements that reach past the screen (for the failure message)."""
    return page.evaluate("""(width) => [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .slice(-4).map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))""",
                         width)


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("language", ["sw", "en"])
def test_no_page_is_wider_than_the_screen(page, login, live_asgi, owner, staff, history, width, language, settings):
    page.set_viewport_size({"width": width, "height": 844})
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_asgi}])
    too_wide = {}
    for path in PUBLIC:
        page.goto(path)
        if page_width(page) > width:
            too_wide[path] = (page_width(page), widest(page, width))
    login(page, owner)
    for path in SIGNED_IN + [f"/chat/{history.id}/"]:
        page.goto(path)
        if page_width(page) > width:
            too_wide[path] = (page_width(page), widest(page, width))
    login(page, staff)
    for path in STAFF + [f"/console/users/{owner.pk}/", f"/console/conversations/{history.id}/"]:
        page.goto(path)
        if page_width(page) > width:
            too_wide[path] = (page_width(page), widest(page, width))
    assert too_wide == {}


def test_a_long_email_address_fits_the_phone_dashboard(page, login, make_user):
    walker = make_user("mtumiaji-mpya-wa-majaribio-1795978918@example.com")
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, walker)
    page.goto("/dashboard/")
    assert page_width(page) <= 390, widest(page, 390)


def test_dashboard_cards_line_up_their_buttons(page, login, owner, history):
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, owner)
    page.goto("/dashboard/")
    tops = [box["y"] + box["height"] for box in
            (button.bounding_box() for button in page.locator(".grid .card .card-actions").all())]
    assert len(tops) == 2 and abs(tops[0] - tops[1]) < 2


@pytest.mark.parametrize("path", ["/dashboard/usage/", "/dashboard/keys/", "/docs/api/"])
def test_table_headers_break_between_words_only(page, login, owner, history, path):
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, owner)
    page.goto(path)
    broken = page.evaluate("""() => [...document.querySelectorAll('th')].filter((th) => {
      const range = document.createRange(); range.selectNodeContents(th);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
      return lines > Math.max(1, th.textContent.trim().split(/\\s+/).length);
    }).map((th) => th.textContent)""")
    assert broken == []


def test_the_new_key_copy_button_is_styled(page, login, owner, history):
    login(page, owner)
    page.goto("/dashboard/keys/")
    page.get_by_label("Jina").fill("Simu")
    page.get_by_role("button", name="Tengeneza ufunguo").click()
    copy = page.get_by_role("button", name="Nakili")
    assert copy.evaluate("el => getComputedStyle(el).backgroundColor") == page.get_by_role(
        "button", name="Tengeneza ufunguo").evaluate("el => getComputedStyle(el).backgroundColor")


def test_revoking_a_key_asks_first(page, login, owner, history):
    from pawa.api.models import ApiKey

    login(page, owner)
    page.goto("/dashboard/keys/")
    page.on("dialog", lambda dialog: pytest.fail("a native dialog opened"))
    page.get_by_role("button", name="Batilisha").click()
    dialog = page.locator("dialog.confirm-dialog")
    assert "Programu zinazoutumia" in dialog.inner_text()
    dialog.get_by_role("button", name="Ghairi").click()
    assert ApiKey.objects.get(user=owner).revoked_at is None
    page.get_by_role("button", name="Batilisha").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Batilisha").click()
    page.wait_for_load_state()
    page.wait_for_timeout(300)
    assert ApiKey.objects.get(user=owner).revoked_at is not None
