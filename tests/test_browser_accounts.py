"""A visitor registers, logs out, logs in and reaches the dashboard — in Swahili, in a real browser."""

from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_register_login_dashboard_in_swahili(page, live_asgi, tmp_path):
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "sw"
    page.get_by_role("link", name="Jisajili").first.click()
    page.get_by_label("Barua pepe").fill("zawadi@example.com")
    page.get_by_label("Nenosiri:").fill("Mlima-Kilimanjaro-5895")
    page.get_by_label("Nenosiri (tena)").fill("Mlima-Kilimanjaro-5895")
    page.get_by_role("button", name="Jisajili").click()
    page.wait_for_url("**/dashboard/")
    assert "Karibu, zawadi@example.com" in page.content()

    page.get_by_role("button", name="Toka").click()
    page.wait_for_url(lambda url: urlparse(url).path == "/")
    page.get_by_role("link", name="Ingia").first.click()
    page.get_by_label("Barua pepe").fill("zawadi@example.com")
    page.get_by_label("Nenosiri").fill("Mlima-Kilimanjaro-5895")
    page.get_by_role("button", name="Ingia").click()
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Karibu, zawadi@example.com").is_visible()
    page.screenshot(path=str(tmp_path / "dashboard.png"))

    outside = [url for url in page.requested_urls if urlparse(url).hostname != "127.0.0.1"]
    assert outside == []
    assert len(page.requested_urls) > 5  # pages, CSS, JS and the icon were really loaded


def test_language_switcher_and_theme_in_the_browser(page):
    page.goto("/")
    with page.expect_navigation():
        page.get_by_label("Lugha").select_option("en")
    assert page.get_by_role("heading", name="Experience the power of PAWA, the Swahili language AI").is_visible()
    page.reload()
    assert page.locator("html").get_attribute("lang") == "en"

    before = page.locator("html").get_attribute("data-theme")
    page.get_by_role("button", name="Dark theme").or_(page.get_by_role("button", name="Light theme")).click()
    after = page.locator("html").get_attribute("data-theme")
    assert before != after
    page.reload()
    assert page.locator("html").get_attribute("data-theme") == after


def test_wrong_password_message_in_the_browser(page, owner):
    page.goto("/accounts/login/")
    page.get_by_label("Barua pepe").fill(owner.email)
    page.get_by_label("Nenosiri").fill("si-sahihi")
    page.get_by_role("button", name="Ingia").click()
    assert page.get_by_text("Barua pepe na/au nenosiri ulilotaja si sahihi.").is_visible()
