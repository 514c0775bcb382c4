"""Real Celery inference workers in processes of their own, on the test run's database, Redis and queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from pawa.generation.workers import workers_alive

SMOL = "smollm2-135m-instruct"


def database_url() -> str:
    """The test database as a DATABASE_URL a worker process can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(name: str, log_path: Path, *, concurrency: int = 1, env: dict | None = None) -> subprocess.Popen:
    """Start `celery -A pawa worker` (threads pool, as `manage.py serve` runs it) named `name@<host>`
    on the run's inference queue, with SmolLM2 as its preloaded model; its output goes to
    `log_path`. Returns at once (see `wait_until_ready`)."""
    # The platform's settings (tests.settings turns preloading off); the environment already
    # holds the run's var dir, Redis port, prefix and queue names (tests/settings.py).
    environment = dict(
        os.environ, DJANGO_SETTINGS_MODULE="pawa.settings", DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL,
        PAWA_MODELS_DIR=str(settings.PAWA_MODELS_DIR), PYTHONUNBUFFERED="1", PAWA_PRELOAD_MODEL="1",
        PAWA_DEFAULT_MODEL=SMOL, PAWA_WORKER_CONCURRENCY=str(concurrency), **(env or {}),
    )
    with open(log_path, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pawa", "worker", "--queues", settings.PAWA_INFERENCE_QUEUE,
             "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            env=environment, cwd=settings.BASE_DIR, stdout=output, stderr=subprocess.STDOUT,
        )


def wait_until_ready(processes: dict[str, subprocess.Popen], timeout: float = 60.0) -> None:
    """Wait until every named worker is registered with SmolLM2 loaded (it takes work at once)."""
    deadline = time.monotonic() + timeout
    while True:
        ready = {entry["hostname"].split("@")[0] for entry in workers_alive() if SMOL in entry.get("models", [])}
        if all(name in ready for name in processes):
            return
        for name, process in processes.items():
            assert process.poll() is None, f"worker {name} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"workers not ready in time: {sorted(ready)}"
        time.sleep(0.2)


def stop_worker(process: subprocess.Popen) -> None:
    """SIGKILL a worker that is still running and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
