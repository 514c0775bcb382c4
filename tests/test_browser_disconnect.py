"""Leaving the chat page while an answer is written is normal: nothing is logged as an error."""

import logging

import pytest

from pawa.chat.models import Conversation
from tests.test_browser_chat import answer_text, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def errors():
    handler = Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def test_reloading_mid_answer_logs_no_error(page, login, owner, real_models, celery_worker, errors):
    conversation = Conversation.objects.create(user=owner, model_name="smollm2-135m-instruct", temperature=0,
                                               max_tokens=300)
    login(page, owner)
    page.goto(f"/chat/{conversation.id}/")
    page.get_by_label("Ujumbe").fill("Write a long story about a lion and a mouse.")
    page.keyboard.press("Enter")
    for _ in range(3):
        wait_for(lambda: len(answer_text(page)) > 5 if page.locator(".message.assistant").count() else False)
        page.reload()
    page.goto("about:blank")  # the socket closes while frames are still being relayed
    page.wait_for_timeout(1500)
    found = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in errors if r.levelno >= logging.ERROR or r.exc_info]
    assert found == []
