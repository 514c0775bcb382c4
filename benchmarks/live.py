"""A live local platform for the benchmark and the load test, and the clients that talk to it.

`LivePlatform.start()` runs `manage.py migrate` and `manage.py serve` (Redis, Celery
worker(s), uvicorn) on 127.0.0.1 with a state of its own, so it never collides with `make run`,
a test run or another benchmark: a temporary `var/` directory (SQLite database, secret key,
Redis data), an embedded Redis on a free port (unless REDIS_URL is set), its own Redis key
prefix and Celery queue names. Only the converted models are shared (`var/models`).
`LivePlatform.attach(url)` uses a platform that is already running instead; it must have been
started from this checkout with the same environment, because accounts are created directly
in its database.

The clients speak to the platform the way people and programs do: the OpenAI SDK over SSE,
the chat websocket with a session cookie, the chat's JSON endpoints over HTTP.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
SHELLS = {"sh", "bash", "dash"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_environment(run: str, **overrides: str) -> dict[str, str]:
    """Environment variables that give one run its own state (the pattern of tests/settings.py)."""
    env = {
        "PAWA_VAR_DIR": tempfile.mkdtemp(prefix=f"pawa-{run}-"),
        "PAWA_MODELS_DIR": os.environ.get("PAWA_MODELS_DIR") or str(ROOT / "var" / "models"),
        "PAWA_EMBEDDED_REDIS_PORT": str(free_port()),
        "PAWA_REDIS_PREFIX": f"pawa-{run}",
        "PAWA_INFERENCE_QUEUE": f"pawa-{run}-inference",
        "PAWA_DEFAULT_QUEUE": f"pawa-{run}-default",
        "DJANGO_SETTINGS_MODULE": "pawa.settings",
        "DEBUG": "0",
    }
    env.update(overrides)
    return env


class LivePlatform:
    """A running platform: its URL and, when this process started it, its processes."""

    def __init__(self, url: str, process: subprocess.Popen | None = None, var_dir: Path | None = None):
        self.url = url.rstrip("/")
        self.process = process
        self.var_dir = var_dir
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    @classmethod
    def start(cls, *, label: str, env: dict[str, str] | None = None, timeout: float = 180) -> LivePlatform:
        """Start an isolated platform; `env` adds or overrides variables (e.g. limits).

        The variables are also set in this process, so that Django here (accounts, keys,
        checks) reads the same database and Redis as the platform.
        """
        run = f"{label}-{uuid.uuid4().hex[:8]}"
        values = isolated_environment(run, **(env or {}))
        os.environ.update(values)
        os.environ.pop("DATABASE_URL", None)  # SQLite in the run's own var/ directory
        var_dir = Path(values["PAWA_VAR_DIR"])
        port = free_port()
        child_env = dict(os.environ, PYTHONUNBUFFERED="1")
        log = (var_dir / "platform.log").open("wb")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env=child_env, check=True, stdout=log, stderr=subprocess.STDOUT)
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        platform = cls(f"http://127.0.0.1:{port}", process, var_dir)
        try:
            platform.wait_ready(timeout)
        except BaseException:
            platform.stop(keep_logs=True)
            raise
        return platform

    @classmethod
    def attach(cls, url: str, timeout: float = 30) -> LivePlatform:
        host = url.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise SystemExit(f"Refusing {url}: only a platform on this machine (127.0.0.1) may be loaded")
        platform = cls(url)
        platform.wait_ready(timeout)
        return platform

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the platform exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(f"{self.url}/readyz not ready after {timeout:.0f}s ({last})\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.var_dir is None or not (self.var_dir / "platform.log").exists():
            return ""
        text = (self.var_dir / "platform.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # Processes ---------------------------------------------------------------------------

    def processes(self) -> dict[str, list[psutil.Process]]:
        """The platform's processes by role: web (uvicorn), worker (Celery), redis."""
        if self.process is not None:
            try:
                candidates = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                candidates = []
        else:
            candidates = list(psutil.process_iter())
        queue = os.environ.get("PAWA_INFERENCE_QUEUE", "inference")
        roles: dict[str, list[psutil.Process]] = {"web": [], "worker": [], "redis": []}
        for proc in candidates:
            try:
                if proc.name() in SHELLS:
                    continue  # honcho starts each command through a shell
                cmdline = " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if "celery" in cmdline and " worker" in cmdline:
                # When attached, only this platform's workers (they consume its queue).
                if self.process is not None or queue in cmdline:
                    roles["worker"].append(proc)
            elif "uvicorn" in cmdline and "pawa.asgi" in cmdline:
                if self.process is not None or f"--port {self.port}" in cmdline:
                    roles["web"].append(proc)
            elif "redis-server" in cmdline and self.process is not None:
                roles["redis"].append(proc)
        return roles

    def memory(self) -> dict[str, list[dict]]:
        """Resident memory (MiB) of each platform process, by role."""
        result: dict[str, list[dict]] = {}
        for role, procs in self.processes().items():
            rows = []
            for proc in procs:
                try:
                    rows.append({"pid": proc.pid, "rss_mib": round(proc.memory_info().rss / MIB, 1),
                                 "name": _process_label(proc)})
                except psutil.NoSuchProcess:
                    continue
            result[role] = rows
        return result

    def stop(self, keep_logs: bool = False) -> None:
        """Stop what start() started (honcho stops its children on SIGTERM), then clean up."""
        if self.process is None:
            return
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for proc in alive:  # only the processes this platform started, by their id
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        if self.var_dir is not None:
            if keep_logs:
                print(f"Platform logs kept in {self.var_dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.var_dir, ignore_errors=True)
        self.process = None


class CpuMeter:
    """The share of the machine's CPUs that other work used during a measurement (percent).

    Other work is everything except this process and the platform's processes: on a shared
    machine it slows every number down, so each measurement reports it.
    """

    def __init__(self, platform: LivePlatform):
        self.platform = platform
        self.other_percent: float | None = None

    def _own_seconds(self) -> float:
        total = 0.0
        processes = [psutil.Process()] + [p for ps in self.platform.processes().values() for p in ps]
        for proc in processes:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    @staticmethod
    def _busy_seconds() -> float:
        times = psutil.cpu_times()
        return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))

    def __enter__(self) -> CpuMeter:
        self._started = time.monotonic()
        self._busy = self._busy_seconds()
        self._own = self._own_seconds()
        return self

    def __exit__(self, *exc_info) -> None:
        wall = time.monotonic() - self._started
        other = (self._busy_seconds() - self._busy) - (self._own_seconds() - self._own)
        capacity = wall * (psutil.cpu_count() or 1)
        self.other_percent = round(max(0.0, 100 * other / capacity), 1) if capacity > 0 else None


def _process_label(proc: psutil.Process) -> str:
    cmdline = proc.cmdline()
    if any("celery" in part for part in cmdline):
        try:
            parent = proc.parent()
            parent_is_worker = parent.name() not in SHELLS and any("celery" in part for part in parent.cmdline())
        except (psutil.NoSuchProcess, AttributeError):
            parent_is_worker = False
        return "celery pool child" if parent_is_worker else "celery worker"
    return Path(cmdline[0]).name if cmdline else proc.name()


# Accounts ------------------------------------------------------------------------------


@dataclass
class Account:
    """A person using the platform: an API key for /v1 and a session for the chat."""

    user_id: int
    email: str
    api_key: str
    session_cookie: str
    csrf_token: str = field(default_factory=lambda: "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(32)))

    def cookie_header(self) -> str:
        return f"{self.session_cookie}; csrftoken={self.csrf_token}"


def django_setup() -> None:
    """Django in this process, reading the environment the platform was started with."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pawa.settings")
    import logging

    import django

    django.setup()
    for name in ("httpx", "httpx2", "openai", "matplotlib", "websockets"):
        logging.getLogger(name).setLevel(logging.WARNING)


def create_account(email: str, *, unlimited: bool = False) -> Account:
    """A user with an API key and a logged-in session (Django is set up in this process).

    `unlimited` lifts the per-user limits and plan quotas (requests, tokens per minute, day and
    month, concurrency) so that they do not throttle a measurement.
    """
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from pawa.api.keys import apikey_create
    from pawa.api.models import ApiLimits

    user = get_user_model().objects.create_user(username=email.split("@")[0], email=email)
    _key, secret = apikey_create(user=user, name="benchmark")
    if unlimited:
        ApiLimits.objects.update_or_create(user=user, defaults={
            "requests_per_minute": 100_000, "tokens_per_minute": 100_000_000, "tokens_per_day": 2_000_000_000,
            "tokens_per_month": 10**12, "max_concurrent": 1000})
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return Account(user.id, email, secret, f"{name}={client.cookies[name].value}")


# Chat over HTTP (the chat page's JSON endpoints) ---------------------------------------------


def chat_http(platform: LivePlatform, account: Account, method: str, path: str,
              body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    """Call one of the chat's JSON endpoints as the logged-in person; returns (status, json)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{platform.url}{path}", data=data, method=method, headers={
        "Cookie": account.cookie_header(), "X-CSRFToken": account.csrf_token,
        "Content-Type": "application/json", "Accept": "application/json",
    })
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {"raw": raw[:500].decode(errors="replace")}
        return exc.code, payload


def conversation_create(platform: LivePlatform, account: Account, *, model: str, temperature: float,
                        max_tokens: int, system_prompt: str | None = None) -> int:
    status, data = chat_http(platform, account, "POST", "/chat/api/conversations/", {"model": model})
    if status != 201:
        raise RuntimeError(f"creating a conversation failed: {status} {data}")
    settings_body: dict = {"temperature": temperature, "max_tokens": max_tokens}
    if system_prompt is not None:
        settings_body["system_prompt"] = system_prompt
    status, data = chat_http(platform, account, "PATCH", f"/chat/api/conversations/{data['id']}/", settings_body)
    if status != 200:
        raise RuntimeError(f"setting up a conversation failed: {status} {data}")
    return data["id"]


def websocket_connect(platform: LivePlatform, account: Account):
    """The chat websocket as the browser opens it (await it, or use it as an async context manager)."""
    import websockets

    return websockets.connect(
        platform.url.replace("http://", "ws://") + "/ws/chat/",
        additional_headers={"Cookie": account.cookie_header(), "Origin": platform.url},
        max_size=2**22, open_timeout=30, ping_interval=None,
    )


def api_client(platform: LivePlatform, account: Account, timeout: float = 300):
    import openai

    return openai.AsyncOpenAI(base_url=f"{platform.url}/v1", api_key=account.api_key, max_retries=0,
                              timeout=timeout)


# Streams ---------------------------------------------------------------------------------


@dataclass
class StreamRecord:
    """What a client saw of one answer; times are time.perf_counter() values."""

    transport: str
    prompt: str
    sent: float
    admitted: float | None = None  # response headers (SSE) or "accepted" (websocket)
    first: float | None = None  # first visible text
    chunks: list[float] = field(default_factory=list)  # arrival of every piece of text
    done: float | None = None
    tokens: int = 0
    text: str = ""
    finish_reason: str | None = None
    status: int | None = None
    error: str | None = None
    generation_id: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.sent

    @property
    def decode_rate(self) -> float | None:
        """Tokens per second after the first one, as the client received them."""
        if self.first is None or self.done is None or self.tokens < 2 or self.done <= self.first:
            return None
        return (self.tokens - 1) / (self.done - self.first)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.chunks, self.chunks[1:], strict=False)]

    def summary(self) -> dict:
        return {
            "transport": self.transport, "tokens": self.tokens, "status": self.status, "error": self.error,
            "finish_reason": self.finish_reason, "generation_id": self.generation_id,
            "ttft_s": _round(self.ttft), "decode_tok_s": _round(self.decode_rate),
            "total_s": _round(None if self.done is None else self.done - self.sent),
            "wait_for_admission_s": _round(None if self.admitted is None else self.admitted - self.sent),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


async def sse_chat(client, *, model: str, prompt: str, max_tokens: int, temperature: float = 0.0,
                   stream: bool = True, on_admitted=None) -> StreamRecord:
    """One /v1/chat/completions request through the official SDK; never raises."""
    import openai

    record = StreamRecord("sse" if stream else "api", prompt, time.perf_counter())
    messages = [{"role": "user", "content": prompt}]
    try:
        if not stream:
            response = await client.chat.completions.create(
                model=model, messages=messages, temperature=temperature, max_tokens=max_tokens)
            record.done = time.perf_counter()
            record.status = 200
            record.text = response.choices[0].message.content or ""
            record.finish_reason = response.choices[0].finish_reason
            record.tokens = response.usage.completion_tokens if response.usage else 0
            record.generation_id = _generation_id(response.id)
            return record
        response = await client.chat.completions.create(
            model=model, messages=messages, temperature=temperature, max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True})
        record.admitted = time.perf_counter()
        record.status = 200
        if on_admitted is not None:
            on_admitted()
        pieces = []
        async for chunk in response:
            now = time.perf_counter()
            record.generation_id = record.generation_id or _generation_id(chunk.id)
            if chunk.choices:
                choice = chunk.choices[0]
                if choice.delta and choice.delta.content:
                    pieces.append(choice.delta.content)
                    record.chunks.append(now)
                    if record.first is None:
                        record.first = now
                if choice.finish_reason:
                    record.finish_reason = choice.finish_reason
            if chunk.usage:
                record.tokens = chunk.usage.completion_tokens
        record.done = time.perf_counter()
        record.text = "".join(pieces)
    except openai.APIStatusError as exc:
        record.status = exc.status_code
        record.error = f"{exc.status_code} {_error_code(exc)}"
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        record.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    except openai.APIError as exc:  # an error event inside the stream: the server's 500
        record.status = 500
        record.error = f"error event: {str(exc)[:200]}"
    except Exception as exc:  # noqa: BLE001 - reported with the results
        record.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    if record.done is None and record.error is None:
        record.error = "no end of stream"
    return record


def _generation_id(response_id: str | None) -> str | None:
    if not response_id or "-" not in response_id:
        return None
    try:
        return str(uuid.UUID(response_id.split("-", 1)[1]))
    except ValueError:
        return None


def _error_code(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("code") or error.get("type") or "")
    return ""


async def websocket_chat(ws, *, conversation_id: int, prompt: str, timeout: float = 300) -> StreamRecord:
    """Send one chat message on an open websocket and follow its answer to the end; never raises."""
    import asyncio

    record = StreamRecord("websocket", prompt, time.perf_counter())
    request_id = uuid.uuid4().hex
    pieces = []
    try:
        await ws.send(json.dumps({"type": "send", "conversation_id": conversation_id, "content": prompt,
                                  "request_id": request_id}))
        async with asyncio.timeout(timeout):
            while True:
                event = json.loads(await ws.recv())
                now = time.perf_counter()
                kind = event.get("type")
                if kind == "accepted" and event.get("request_id") == request_id:
                    record.admitted = now
                    record.generation_id = (event.get("answer") or {}).get("generation_id")
                    continue
                if kind == "error" and event.get("request_id") == request_id:
                    record.error = f"refused: {event.get('code')}: {event.get('message')}"
                    record.status = 429 if event.get("code") == "refused" else 400
                    break
                if record.generation_id is None or event.get("generation_id") != record.generation_id:
                    continue
                if kind == "delta" and event.get("text"):
                    pieces.append(event["text"])
                    record.chunks.append(now)
                    if record.first is None:
                        record.first = now
                elif kind == "done":
                    record.done = now
                    record.tokens = event.get("completion_tokens") or 0
                    record.finish_reason = event.get("finish_reason")
                    record.status = 200
                    break
                elif kind == "error":
                    record.error = f"{event.get('code')}: {event.get('message')}"
                    record.status = 500
                    break
    except TimeoutError:
        record.error = f"no end of answer within {timeout:.0f}s"
    except Exception as exc:  # noqa: BLE001 - reported with the results
        record.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    record.text = "".join(pieces)
    return record
