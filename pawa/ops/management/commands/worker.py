"""Run one Celery worker (inference, or with --role training the model-training worker) and
start it again whenever it dies.

`make run` (manage.py serve) runs workers through this command: a worker process killed by
the kernel (out of memory), by a crash or by hand comes back within seconds while the web
server keeps serving (requests in between get a clear "no worker" answer, and answers that
were running end as interrupted with their text kept). SIGTERM or Ctrl-C stops the worker and
this command.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

# A worker that ran this long was healthy: restart the next failure without delay.
HEALTHY_SECONDS = 60.0
MAX_DELAY_SECONDS = 30.0


def _die_with_parent() -> None:
    """In the worker process: the kernel sends it SIGTERM if this command dies, even by
    SIGKILL, so no worker outlives its supervisor (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


class Command(BaseCommand):
    help = "Run a Celery inference worker and restart it when it exits unexpectedly."

    def add_arguments(self, parser):
        parser.add_argument("--hostname", default="inference1@%h")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument(
            "--role", choices=("inference", "training"), default="inference",
            help="training: one training run at a time in its own process, on the training queue",
        )

    def handle(self, *args, hostname, loglevel, role, **options):
        command = [
            sys.executable, "-m", "celery", "-A", "pawa", "worker",
            "--queues", f"{settings.PAWA_INFERENCE_QUEUE},{settings.CELERY_TASK_DEFAULT_QUEUE}",
            "--hostname", hostname, "--loglevel", loglevel,
        ]
        env = None
        if role == "training":
            # One run at a time, in the worker's own process (torch threads, no forking).
            command[command.index("--queues") + 1] = settings.PAWA_TRAINING_QUEUE
            command += ["--pool", "solo", "--concurrency", "1"]
            env = dict(os.environ, PAWA_WORKER_ROLE="training")
        stopping = threading.Event()
        child: subprocess.Popen | None = None

        def stop(signum, frame):
            stopping.set()
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        delay = 1.0
        while not stopping.is_set():
            started = time.monotonic()
            child = subprocess.Popen(command, preexec_fn=_die_with_parent, env=env)
            if stopping.is_set():  # a signal that came while the child was being started
                child.send_signal(signal.SIGTERM)
            returncode = child.wait()
            if stopping.is_set():
                break
            if time.monotonic() - started > HEALTHY_SECONDS:
                delay = 1.0
            self.stderr.write(f"The worker stopped (exit status {returncode}); starting it again in {delay:.0f} s.")
            stopping.wait(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
