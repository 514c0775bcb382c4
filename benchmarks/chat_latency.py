"""Time to first token and tokens/s as a client sees them: raw engine vs websocket chat vs SSE API.

Runs the real stack in one process (uvicorn serving pawa.asgi, a Celery worker on the
inference queue, the configured database and Redis) and prints numbers; asserts nothing.

    python benchmarks/chat_latency.py [--model gemma3-270m] [--runs 4] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pawa.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

PROMPTS = [
    "Mji mkuu wa Tanzania ni upi?",
    "Eleza faida za kunywa maji kila siku.",
    "Taja wanyama watano wanaopatikana Serengeti.",
    "What is the capital of Kenya?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(label: str, ttfts: list[float], rates: list[float]) -> str:
    return (f"  {label:28} TTFT median {1000 * statistics.median(ttfts):6.0f} ms   "
            f"decode median {statistics.median(rates):5.1f} tok/s   (n={len(ttfts)})")


def raw_engine(model: str, max_tokens: int, runs: int):
    from inference.engine import SamplingParams
    from pawa.generation.engines import get_engine

    engine = get_engine(model)
    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    ttfts, rates = [], []
    for prompt in (PROMPTS * runs)[:runs]:
        built = engine.chat_prompt([{"role": "user", "content": prompt}], system=engine.card.default_system_prompt)
        result = engine.generate(built, params).complete()
        ttfts.append(result.time_to_first_token)
        rates.append(result.tokens_per_second)
    return ttfts, rates


async def websocket_chat(base: str, cookie: str, conversation_id: int, runs: int):
    import websockets

    ttfts, rates = [], []
    uri = base.replace("http://", "ws://") + "/ws/chat/"
    async with websockets.connect(uri, additional_headers={"Cookie": cookie, "Origin": base}) as ws:
        for prompt in (PROMPTS * runs)[:runs]:
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "send", "conversation_id": conversation_id, "content": prompt}))
            first = None
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "delta" and first is None:
                    first = time.perf_counter()
                if event["type"] in ("done", "error"):
                    done = time.perf_counter()
                    break
            ttfts.append(first - sent)
            tokens = event.get("completion_tokens") or 0
            rates.append((tokens - 1) / (done - first) if tokens > 1 and done > first else 0.0)
    return ttfts, rates


def sse_api(base: str, secret: str, model: str, max_tokens: int, runs: int):
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0, timeout=120)
    ttfts, rates = [], []
    for prompt in (PROMPTS * runs)[:runs]:
        sent = time.perf_counter()
        first = None
        usage = None
        stream = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first is None:
                first = time.perf_counter()
            if chunk.usage:
                usage = chunk.usage
        done = time.perf_counter()
        ttfts.append((first or done) - sent)
        tokens = usage.completion_tokens if usage else 0
        rates.append((tokens - 1) / (done - first) if first and tokens > 1 else 0.0)
    return ttfts, rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=settings.PAWA_DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    import uvicorn
    from celery.contrib.testing.worker import start_worker
    from django.contrib.auth import get_user_model
    from django.test import Client

    from pawa.api.keys import apikey_create
    from pawa.asgi import application
    from pawa.celery import app
    from pawa.chat.models import Conversation
    from pawa.ops import localredis

    call_command("migrate", verbosity=0)
    redis_process = None
    if settings.REDIS_EMBEDDED:
        redis_process = localredis.ensure_running(settings.REDIS_URL, settings.EMBEDDED_REDIS_PORT,
                                                  settings.VAR_DIR / "redis")
    user = get_user_model().objects.create_user(username=f"bench-{int(time.time())}",
                                                email=f"bench-{int(time.time())}@example.invalid")
    try:
        _key, secret = apikey_create(user=user, name="benchmark")
        from pawa.api.models import ApiLimits

        ApiLimits.objects.create(user=user, requests_per_minute=10_000, tokens_per_minute=10_000_000,
                                 tokens_per_day=2_000_000_000, tokens_per_month=10**12, max_concurrent=100)
        conversation = Conversation.objects.create(user=user, model_name=args.model, temperature=0,
                                                   max_tokens=args.max_tokens)
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                               ws="websockets-sansio", lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                          queues=["inference", "default"]):
            print(f"{args.model}: greedy, max {args.max_tokens} tokens, {args.runs} prompts each "
                  f"(warm-up excluded)")
            raw_engine(args.model, 8, 1)  # load and warm up
            print(summary("engine (in the worker)", *raw_engine(args.model, args.max_tokens, args.runs)))
            print(summary("browser websocket /ws/chat/", *asyncio.run(websocket_chat(base, cookie, conversation.id,
                                                                                     args.runs))))
            print(summary("SSE /v1/chat/completions", *sse_api(base, secret, args.model, args.max_tokens, args.runs)))
        server.should_exit = True
    finally:
        user.delete()
        if redis_process is not None:
            redis_process.terminate()


if __name__ == "__main__":
    main()
