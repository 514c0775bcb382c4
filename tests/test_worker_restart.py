"""`make run`'s worker command starts a killed worker again and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_killed_worker_is_started_again_and_sigterm_stops_everything(tmp_path):
    env = dict(os.environ, PAWA_PRELOAD_MODEL="0", PYTHONUNBUFFERED="1")
    supervisor = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "worker", "--hostname", "restart-test@%h",
         "--loglevel", "WARNING"],
        env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = wait_for(lambda: children(supervisor.pid))[0]
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: [c for c in children(supervisor.pid) if c != first])[0]
        assert supervisor.poll() is None and second != first
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=30)
        assert not Path(f"/proc/{second}").exists() or Path(f"/proc/{second}/status").read_text().find("zombie") >= 0
        assert "starting it again" in supervisor.stderr.read()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=10)


def test_a_killed_supervisor_takes_its_worker_with_it():
    env = dict(os.environ, PAWA_PRELOAD_MODEL="0", PYTHONUNBUFFERED="1")
    supervisor = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "worker", "--hostname", "orphan-test@%h",
         "--loglevel", "WARNING"],
        env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    child = wait_for(lambda: children(supervisor.pid))[0]
    supervisor.kill()
    supervisor.wait(timeout=10)
    wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z (zombie)" in Path(f"/proc/{child}/status").read_text(),
             timeout=30)
