"""Settings for the test suite: the platform's settings with a state of its own.

A test run never shares anything with a `make run` of the same checkout, another checkout or
another test run on the machine: it gets its own `var/` directory (SQLite database, secret
key, embedded Redis data) in a temporary folder, its own embedded Redis server on a free port
(when REDIS_URL is unset), and its own Redis key prefix and Celery queue names (which also
keep it apart when REDIS_URL points at a shared server, as in CI).

The values go into the environment before the platform's settings read it, so worker
processes that tests start (they inherit the environment) see the same ones. The converted
built-in models are the one exception: they are shared with `make run` in `var/models`
(installs are atomic, and converting them again would add a minute to every run).
"""

import os
import socket
import tempfile
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if "PAWA_TEST_RUN" not in os.environ:
    run = uuid.uuid4().hex[:8]
    os.environ["PAWA_TEST_RUN"] = run
    os.environ["PAWA_VAR_DIR"] = tempfile.mkdtemp(prefix=f"pawa-test-{run}-")
    os.environ.setdefault("PAWA_MODELS_DIR", str(BASE_DIR / "var" / "models"))
    # Tiny random models are installed without the int8 measurements (the built-in ones and
    # tests/inference/test_smoothing.py measure).
    os.environ.setdefault("PAWA_INSTALL_MEASURE", "0")
    os.environ["PAWA_EMBEDDED_REDIS_PORT"] = str(_free_port())
    os.environ["PAWA_REDIS_PREFIX"] = f"pawa-test-{run}"
    os.environ["PAWA_INFERENCE_QUEUE"] = f"pawa-test-{run}-inference"
    os.environ["PAWA_DEFAULT_QUEUE"] = f"pawa-test-{run}-default"
    # The unlimited plan, so that tests of other features meet only the server's own limits;
    # the quota tests give their users a plan.
    os.environ.setdefault("PAWA_DEFAULT_PLAN", "enterprise")
    os.environ["PAWA_TRAINING_QUEUE"] = f"pawa-test-{run}-training"

from pawa.settings import *  # noqa: E402,F403

TEST_RUN = os.environ["PAWA_TEST_RUN"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PAWA_PRELOAD_MODEL = False  # tests load the models they use
