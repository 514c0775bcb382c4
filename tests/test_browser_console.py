"""The console overview in a real browser: its charts are drawn and it fits a phone and a desktop."""

from datetime import timedelta

import pytest
from django.utils import timezone

from pawa.generation.models import Generation

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def traffic(owner, make_user):
    """Two weeks of chat and API answers of two models from two people."""
    other = make_user("juma.mwenye.jina.refu.sana@example.com")
    for day in range(14):
        for number, (user, source, model) in enumerate([(owner, "web", "gemma3-270m"), (owner, "api", "gemma3-270m"),
                                                        (other, "api", "smollm2-135m-instruct")]):
            generation = Generation.objects.create(
                user=user, model_name=model, prompt=[], source=source, status="complete", prompt_tokens=30 + day,
                completion_tokens=100 + 10 * number, time_to_first_token_ms=200 + 20 * day + 50 * number,
                tokens_per_second=25 + number + day / 2)
            Generation.objects.filter(pk=generation.pk).update(created_at=timezone.now() - timedelta(days=day))


@pytest.mark.parametrize("width", [390, 1280])
def test_the_overview_draws_its_charts_and_fits_the_screen(page, login, staff, traffic, width, idle_worker):
    page.set_viewport_size({"width": width, "height": 900})
    login(page, staff)
    page.goto("/console/")
    assert page.locator("h1").inner_text() == "Muhtasari"  # Swahili first
    charts = page.locator("figure.chart svg")
    assert charts.count() == 5
    for index in range(5):
        box = charts.nth(index).bounding_box()
        assert box["width"] > 200 and box["height"] > 40 and box["x"] >= 0 and box["x"] + box["width"] <= width
    assert page.locator("figure.chart polyline").count() >= 2 + 4 + 2  # usage, TTFT p50/p95 × 2 models, tok/s
    assert page.locator("figure.chart rect").count() == 2  # top users
    stroke = page.locator("figure.chart polyline").first.evaluate("el => getComputedStyle(el).stroke")
    assert stroke not in ("none", "")  # coloured by the stylesheet
    assert page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)") <= width
    assert all(url.startswith(page.url.split("/console/")[0]) for url in page.requested_urls)  # nothing external


def test_the_overview_cards_of_one_row_line_up(page, login, staff, traffic, idle_worker):
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, staff)
    page.goto("/console/")
    stat_tops = {round(box["y"]) for box in (card.bounding_box() for card in page.locator(".stat-grid > .card").all())}
    assert len(stat_tops) == 1, stat_tops  # six figures in one row at 1280 px
    first, second = (page.locator(".chart-grid > .card").nth(index).bounding_box() for index in (0, 1))
    assert round(first["y"]) == round(second["y"])
