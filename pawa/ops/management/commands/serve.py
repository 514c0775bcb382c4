"""Start the whole platform in the foreground: Redis (if embedded), Celery worker(s), ASGI server.

Output of every process is prefixed with its name; Ctrl-C stops them all.
"""

import os
import shlex
import sys

from django.conf import settings
from django.core.management.base import BaseCommand
from honcho.manager import Manager

from pawa.ops import localredis


class Command(BaseCommand):
    help = "Run Redis (when REDIS_URL is unset), the inference worker(s) and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("PAWA_WORKERS", "1")),
            help="Number of Celery inference worker processes.",
        )

    def handle(self, *args, host, port, workers, **options):
        python = sys.executable
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        manager = Manager()
        if settings.REDIS_EMBEDDED:
            if localredis.is_up(settings.REDIS_URL):
                self.stdout.write(f"Using the Redis already running at {settings.REDIS_URL}")
            else:
                command = localredis.server_command(
                    settings.EMBEDDED_REDIS_PORT, settings.VAR_DIR / "redis"
                )
                manager.add_process("redis", shlex.join(command), env=env)
        # Pool and concurrency come from the settings (CELERY_WORKER_POOL/CONCURRENCY); the
        # worker command starts a worker again if it dies, so the web server stays up.
        for number in range(1, workers + 1):
            worker = [python, str(settings.BASE_DIR / "manage.py"), "worker", "--hostname", f"inference{number}@%h"]
            manager.add_process(f"worker{number}", shlex.join(worker), env=env)
        # Model training (/console/adapt/, manage.py models adapt) has a worker of its own, so
        # chat and the API keep answering while a model learns; it needs the optional extra.
        from inference.adapt import EXTRA_HINT, extra_available

        if extra_available():
            training = [python, str(settings.BASE_DIR / "manage.py"), "worker", "--role", "training",
                        "--hostname", "training1@%h"]
            manager.add_process("training", shlex.join(training), env=env)
        else:
            self.stdout.write(f"Model training is off (torch, transformers and peft are missing): {EXTRA_HINT}")
        web = [
            python, "-m", "uvicorn", "pawa.asgi:application",
            "--host", host, "--port", str(port),
            "--ws", "websockets-sansio", "--proxy-headers", "--no-server-header",
            # PAWA writes the access log itself, with the request id (pawa.ops.middleware).
            "--no-access-log",
        ]
        manager.add_process("web", shlex.join(web), env=env)
        self.stdout.write(f"PAWA starts on http://{host}:{port}  (Ctrl-C stops everything)")
        manager.loop()
        sys.exit(manager.returncode)
