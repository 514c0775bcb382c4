"""A developer creates a key in the dashboard and streams an answer with the openai SDK."""

from urllib.parse import urlparse

import openai
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_dashboard_key_then_openai_sdk_stream(page, login, owner, live_asgi, real_models, celery_worker):
    login(page, owner)
    page.goto("/dashboard/")
    page.get_by_role("link", name="Funguo za API").first.click()
    page.get_by_label("Jina").fill("laptop")
    page.get_by_role("button", name="Tengeneza ufunguo").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("pawa-")
    assert page.get_by_text("Ufunguo huu unaonyeshwa mara moja tu").is_visible()
    page.get_by_role("button", name="Nakili").click()

    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=secret, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "What is the capital of Tanzania?"}],
        temperature=0, max_tokens=30, stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "Dodoma" in text

    page.reload()
    assert secret not in page.content()  # shown once only
    page.get_by_role("link", name="Matumizi").first.click()
    assert page.get_by_text("laptop").first.is_visible()
    outside = [url for url in page.requested_urls if urlparse(url).hostname != "127.0.0.1"]
    assert outside == []
