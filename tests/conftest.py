"""Shared fixtures: real Redis, a real Celery worker, a live ASGI server, three people."""

import os
import shutil
import socket
import threading
import time
import uuid

import pytest
from django.conf import settings

from pawa.ops import localredis

_embedded_redis = None


def pytest_configure(config):
    """Start the run's own embedded Redis (tests/settings.py gave it a free port)."""
    global _embedded_redis
    if settings.REDIS_EMBEDDED:
        if localredis.is_up(settings.REDIS_URL):
            raise RuntimeError(f"Something already answers at {settings.REDIS_URL}; the test run needs its own Redis")
        _embedded_redis = localredis.ensure_running(
            settings.REDIS_URL, settings.EMBEDDED_REDIS_PORT, settings.VAR_DIR / "redis"
        )


def pytest_unconfigure(config):
    from pawa.ops.metrics import metrics_flush

    metrics_flush()  # while Redis still runs
    if _embedded_redis is not None:
        _embedded_redis.terminate()
        _embedded_redis.wait(timeout=10)
    if settings.VAR_DIR.name.startswith(f"pawa-test-{settings.TEST_RUN}-"):
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """New channel layer objects for every test.

    channels-redis binds a layer's receiving state to the event loop of its first receiver
    ("Two event loops are trying to receive() on one channel layer at once!"). Each async test
    runs in its own loop, and the live server of the browser tests in another (its thread); a
    consumer of an earlier test that was still receiving when its loop went away would
    otherwise leave the shared layer bound to that dead loop.
    """
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """Each test gets its own cache namespace, so rate limits never leak between tests."""
    caches = dict(settings.CACHES)
    caches["default"] = dict(caches["default"], KEY_PREFIX=f"{settings.REDIS_PREFIX}-{uuid.uuid4().hex[:12]}")
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def empty_queue():
    """The generation queue starts empty: answers a test left waiting never count for the next."""
    yield
    from pawa.generation.redis import sync_client

    sync_client().delete(settings.PAWA_QUEUE_KEY)


@pytest.fixture
def password():
    return "Mlima-Kilimanjaro-5895"


@pytest.fixture
def make_user(django_user_model, password):
    def make(email: str, **extra):
        user = django_user_model.objects.create_user(
            username=email.split("@")[0], email=email, password=password, **extra
        )
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        return user

    return make


@pytest.fixture
def owner(make_user):
    return make_user("amina@example.com")


@pytest.fixture
def staff(make_user):
    return make_user("baraka@example.com", is_staff=True)


@pytest.fixture
def outsider(make_user):
    return make_user("chausiku@example.com")


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (threads in this process) consuming the platform's queues."""
    from celery.contrib.testing.worker import start_worker

    from pawa.celery import app

    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[settings.PAWA_INFERENCE_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE],
        shutdown_timeout=30,
    ) as worker:
        # Celery's test controller sends test_worker_started, not worker_ready: register here
        # what a real worker registers from worker_ready (pawa/generation/workers.py).
        from pawa.generation.workers import worker_heartbeat_start, worker_heartbeat_stop

        worker_heartbeat_start(hostname=worker.hostname, concurrency=2)
        try:
            yield worker
        finally:
            worker_heartbeat_stop()


@pytest.fixture
def idle_worker():
    """A registered worker that takes nothing from the queue (answers stay queued)."""
    from pawa.generation.workers import Heartbeat

    heartbeat = Heartbeat(f"idle-{uuid.uuid4().hex[:6]}@tests", reap=False).start()
    yield heartbeat
    heartbeat.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_asgi(transactional_db):
    """The real ASGI application (HTTP and websockets) served by uvicorn on 127.0.0.1."""
    import uvicorn

    from pawa.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)
    if thread.is_alive():  # open websockets keep a graceful shutdown waiting: cut them
        server.force_exit = True
        thread.join(timeout=15)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API keeps an event loop running while it
    is open, so it must close before the async (websocket) tests run."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is missing: run scripts/ensure-chromium.sh (make test does)")
    # Playwright's sync API runs an event loop; the ORM calls in browser tests are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_asgi):
    """A fresh browser context; records every URL the page requests."""
    context = browser.new_context(base_url=live_asgi, locale="sw-TZ")
    page = context.new_page()
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    yield page
    context.close()


@pytest.fixture(scope="session")
def real_models():
    """The built-in models, installed offline the way `make run` installs them (once)."""
    from inference.builtin import BUILTIN_MODELS
    from inference.registry import ModelStore

    store = ModelStore(settings.PAWA_MODELS_DIR)
    for name in BUILTIN_MODELS:
        store.install(name, measure=True)
    return store


@pytest.fixture(scope="session")
def smollm(real_models):
    from inference.engine import Engine

    engine = Engine(real_models.path("smollm2-135m-instruct"), device="cpu")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def gemma(real_models):
    from inference.engine import Engine

    engine = Engine(real_models.path("gemma3-270m"), device="cpu")
    yield engine
    engine.close()


@pytest.fixture
def login(live_asgi):
    """Sign a user in to a browser page through a real session cookie."""
    from django.test import Client

    def sign_in(page, user):
        client = Client()
        client.force_login(user)
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
              "url": live_asgi}]
        )

    return sign_in
