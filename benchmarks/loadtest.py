"""A small, bounded load test: N people chatting and calling the API at once for a few minutes.

Starts an isolated platform of its own on 127.0.0.1 with the default settings and limits
(see benchmarks/live.py), or loads one already running on this machine (--url). Each
simulated person has an account, a chat websocket and an API key, and loops until the time is
up: think, then one request, waiting for its answer before the next. Requests alternate between
a chat message over the websocket, a streaming API call and a non-streaming API call
(/v1/chat/completions), and between the models.

At the end every request must have a saved, complete answer: chat answers are read back
through the conversation API, every generation of the test's accounts from the database.
Prints the 5xx count, lost messages, refusals, queue wait p50/p95 (generation created →
started, from the database), time to first token, /readyz checks during the run, and the
resident memory of the web and worker processes before and after. Exits 1 if any request got
a 5xx (or a server error inside a stream) or any message was lost.

    python benchmarks/loadtest.py [--users 8] [--duration 120] [--max-tokens 48] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import live  # noqa: E402
from benchmarks.bench import BUILTIN_MODELS, PROMPTS, percentile  # noqa: E402

ACTIONS = ("chat", "api_stream", "chat", "api")


@dataclass
class Request:
    user: int
    action: str
    model: str
    record: live.StreamRecord
    conversation_id: int | None = None
    outcome: str = ""  # complete, lost, refused
    detail: str = ""


@dataclass
class Person:
    index: int
    account: live.Account
    conversations: dict[str, int] = field(default_factory=dict)
    ws_drops: int = 0


async def person_loop(platform, person: Person, args, deadline: float, requests: list[Request]) -> None:
    rng = random.Random(args.seed * 1000 + person.index)
    client = live.api_client(platform, person.account, timeout=args.request_timeout)
    ws = None
    number = 0
    try:
        while True:
            await asyncio.sleep(rng.uniform(args.think_min, args.think_max))
            if time.monotonic() >= deadline:
                break
            action = ACTIONS[(person.index + number) % len(ACTIONS)]
            model = args.models[(person.index + number // len(ACTIONS)) % len(args.models)]
            prompt = f"{PROMPTS[(person.index * 7 + number) % len(PROMPTS)]} ({person.index}.{number})"
            number += 1
            if action == "chat":
                if ws is None:
                    ws = await live.websocket_connect(platform, person.account)
                conversation_id = person.conversations[model]
                record = await live.websocket_chat(ws, conversation_id=conversation_id, prompt=prompt,
                                                   timeout=args.request_timeout)
                requests.append(Request(person.index, action, model, record, conversation_id))
                if record.error and record.status is None:  # the socket broke: reconnect, as the page does
                    person.ws_drops += 1
                    await _close(ws)
                    ws = None
                if record.error:  # its answer may still be running: continue in a new conversation
                    person.conversations[model] = await asyncio.to_thread(
                        new_conversation, platform, person.account, model, args.max_tokens)
            else:
                record = await live.sse_chat(client, model=model, prompt=prompt, max_tokens=args.max_tokens,
                                             temperature=0.7, stream=action == "api_stream")
                requests.append(Request(person.index, action, model, record))
    finally:
        await client.close()
        if ws is not None:
            await _close(ws)


async def _close(ws) -> None:
    try:
        await ws.close()
    except Exception:  # noqa: BLE001 - already broken
        pass


def new_conversation(platform, account, model: str, max_tokens: int) -> int:
    """A chat conversation as people get it (the model card's system prompt), shorter answers."""
    status, data = live.chat_http(platform, account, "POST", "/chat/api/conversations/", {"model": model})
    if status != 201:
        raise RuntimeError(f"creating a conversation failed: {status} {data}")
    status, data = live.chat_http(platform, account, "PATCH", f"/chat/api/conversations/{data['id']}/",
                                  {"max_tokens": max_tokens})
    if status != 200:
        raise RuntimeError(f"setting up a conversation failed: {status} {data}")
    return data["id"]


async def monitor(platform, deadline: float, checks: list[tuple[str, str]]) -> None:
    """Ask /readyz every 5 s during the run: (time, outcome) pairs."""

    def probe() -> str:
        try:
            with urllib.request.urlopen(f"{platform.url}/readyz", timeout=10) as response:
                return str(response.status)
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read()[:200].decode(errors='replace')}"
        except OSError as exc:
            return f"no answer ({exc})"

    while time.monotonic() < deadline:
        checks.append((time.strftime("%H:%M:%S"), await asyncio.to_thread(probe)))
        await asyncio.sleep(5)


async def run_load(platform, people: list[Person], args) -> tuple[list[Request], list, float]:
    requests: list[Request] = []
    checks: list[tuple[str, str]] = []
    started = time.monotonic()
    deadline = started + args.duration
    monitor_task = asyncio.create_task(monitor(platform, deadline, checks))
    await asyncio.gather(*(person_loop(platform, person, args, deadline, requests) for person in people))
    await monitor_task
    return requests, checks, time.monotonic() - started


def judge(platform, people: list[Person], requests: list[Request]) -> None:
    """Read every answer back: chat messages through the conversation API, API answers from the database."""
    from pawa.generation.models import Generation

    messages = {}
    owners = {r.conversation_id: people[r.user] for r in requests if r.conversation_id}
    for conversation_id, owner in owners.items():
        status, data = live.chat_http(platform, owner.account, "GET", f"/chat/api/conversations/{conversation_id}/")
        for message in data.get("messages", []) if status == 200 else []:
            if message.get("generation_id"):
                messages[message["generation_id"]] = message
    generations = {str(g.id): g for g in Generation.objects.filter(user_id__in=[p.account.user_id for p in people])}
    for request in requests:
        record = request.record
        if record.status in (400, 429) or (record.error or "").startswith("refused"):
            request.outcome, request.detail = "refused", record.error or ""
            continue
        generation = generations.get(record.generation_id or "")
        if request.action == "chat":
            message = messages.get(record.generation_id or "")
            saved = message is not None and message.get("status") == "complete"
            detail = f"message {message.get('status') if message else 'missing'}"
        else:
            saved = generation is not None and generation.status == Generation.Status.COMPLETE
            detail = f"generation {generation.status if generation else 'missing'}"
        client_ok = record.error is None and record.done is not None
        request.outcome = "complete" if saved and client_ok else "lost"
        request.detail = "" if request.outcome == "complete" else f"{detail}; client: {record.error or 'ok'}"


def queue_waits(people: list[Person]) -> tuple[list[float], dict[str, int]]:
    from pawa.generation.models import Generation

    rows = list(Generation.objects.filter(user_id__in=[p.account.user_id for p in people]))
    waits = [(g.started_at - g.created_at).total_seconds() for g in rows if g.started_at]
    return waits, dict(collections.Counter(g.status for g in rows))


def wait_until_idle(people: list[Person], timeout: float = 60) -> None:
    """Let generations the clients gave up on finish before the database is read."""
    from pawa.generation.models import Generation

    deadline = time.monotonic() + timeout
    users = [p.account.user_id for p in people]
    while time.monotonic() < deadline and Generation.objects.filter(user_id__in=users).active().exists():
        time.sleep(1)


def memory_total(memory: dict, role: str) -> float:
    return sum(row["rss_mib"] for row in memory.get(role, []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a platform already running on this machine (127.0.0.1 only), started "
                                      "from this checkout with the same environment")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    parser.add_argument("--models", help="comma-separated (default: the built-in models)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--think-min", type=float, default=1.0)
    parser.add_argument("--think-max", type=float, default=4.0)
    parser.add_argument("--request-timeout", type=float, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the platform's var/ directory and log")
    args = parser.parse_args()
    args.models = (args.models or ",".join(BUILTIN_MODELS)).split(",")
    if not 1 <= args.users <= 64 or not 1 <= args.duration <= 1800:
        parser.error("--users 1..64 and --duration 1..1800: this is a small, bounded load test")

    if args.url:
        platform = live.LivePlatform.attach(args.url)
    else:
        print("Starting an isolated platform (default settings and limits)…")
        platform = live.LivePlatform.start(label="loadtest")
    people: list[Person] = []
    failed = True
    try:
        live.django_setup()
        tag = uuid.uuid4().hex[:6]
        for index in range(args.users):
            account = live.create_account(f"load-{tag}-{index}@example.invalid")
            person = Person(index, account)
            for model in args.models:
                person.conversations[model] = new_conversation(platform, account, model, args.max_tokens)
            people.append(person)
        warm_up(platform, live.create_account(f"load-{tag}-warm-up@example.invalid"), args.models)
        before = platform.memory()
        print(f"{args.users} people for {args.duration:.0f}s on {platform.url} "
              f"(models {', '.join(args.models)}, ≤ {args.max_tokens} tokens, think {args.think_min:g}–"
              f"{args.think_max:g}s)…")
        requests, checks, elapsed = asyncio.run(run_load(platform, people, args))
        wait_until_idle(people)
        judge(platform, people, requests)
        after = platform.memory()
        waits, statuses = queue_waits(people)
        failed = report(args, requests, checks, elapsed, waits, statuses, before, after, people)
    finally:
        if platform.process is None and people:
            from django.contrib.auth import get_user_model

            get_user_model().objects.filter(id__in=[p.account.user_id for p in people]).delete()
        platform.stop(keep_logs=args.keep_logs or failed)
    sys.exit(1 if failed else 0)


def warm_up(platform, account, models: list[str]) -> None:
    async def run():
        client = live.api_client(platform, account)
        try:
            for model in models:
                record = await live.sse_chat(client, model=model, prompt="Hello!", max_tokens=4)
                if record.error:
                    raise RuntimeError(f"warm-up of {model} failed: {record.error}")
        finally:
            await client.close()

    asyncio.run(run())


def report(args, requests, checks, elapsed, waits, statuses, before, after, people) -> bool:
    five_xx = [r for r in requests if (r.record.status or 0) >= 500]
    lost = [r for r in requests if r.outcome == "lost"]
    refused = [r for r in requests if r.outcome == "refused"]
    by_action = {a: [r for r in requests if r.action == a] for a in dict.fromkeys(ACTIONS)}
    print(f"\nLoad test: {args.users} people, {elapsed:.0f}s, {len(requests)} requests "
          + ", ".join(f"{len(rows)} {action}" for action, rows in by_action.items()))
    for action, rows in by_action.items():
        ttfts = [r.record.ttft for r in rows if r.record.ttft is not None]
        totals = [r.record.done - r.record.sent for r in rows if r.record.done is not None]
        print(f"  {action:10} TTFT p50 {_s(percentile(ttfts, 50))} p95 {_s(percentile(ttfts, 95))}; "
              f"answer complete after p50 {_s(percentile(totals, 50))} p95 {_s(percentile(totals, 95))}")
    print(f"  5xx (HTTP status, or an error event inside a stream): {len(five_xx)}")
    print(f"  lost messages (no saved, complete answer): {len(lost)}")
    print(f"  refused with a clear error (4xx): {len(refused)}")
    print(f"  websocket connections dropped by the server: {sum(p.ws_drops for p in people)}")
    print(f"  queue wait (created → started) p50 {_s(percentile(waits, 50))} p95 {_s(percentile(waits, 95))} "
          f"max {_s(max(waits) if waits else None)} over {len(waits)} generations")
    print(f"  generations by status: {statuses}")
    tokens = sum(r.record.tokens for r in requests if r.outcome == "complete")
    print(f"  tokens delivered: {tokens} ({tokens / elapsed:.1f}/s over the run)")
    bad_checks = [c for c in checks if c[1] != "200"]
    print(f"  /readyz during the run: {len(checks) - len(bad_checks)}/{len(checks)} answered 200"
          + "".join(f"\n      {when} {outcome}" for when, outcome in bad_checks[:5]))
    for role in ("web", "worker"):
        print(f"  memory {role}: {memory_total(before, role):.0f} MiB before → {memory_total(after, role):.0f} MiB "
              f"after ({' + '.join(str(row['rss_mib']) for row in after.get(role, []))})")
    problems = sorted({f"{r.action}: {r.detail}" for r in lost} | {f"{r.action}: {r.record.error}" for r in five_xx})
    for problem in problems[:10]:
        print(f"      {problem}")
    if len(problems) > 10:
        print(f"      … {len(problems) - 10} more kinds")
    if args.json:
        args.json.write_text(json.dumps({
            "users": args.users, "duration_s": round(elapsed), "requests": len(requests),
            "five_xx": len(five_xx), "lost": len(lost), "refused": len(refused),
            "queue_wait_p50_s": percentile(waits, 50), "queue_wait_p95_s": percentile(waits, 95),
            "statuses": statuses, "readyz": checks, "memory_before": before, "memory_after": after,
            "problems": problems,
            "requests_detail": [{"user": r.user, "action": r.action, "model": r.model, "outcome": r.outcome,
                                 "detail": r.detail, **r.record.summary()} for r in requests],
        }, indent=1) + "\n")
    failed = bool(five_xx or lost)
    print("FAILED: 5xx or lost messages" if failed else "OK: every request got a saved, complete answer "
          "or a clear refusal")
    return failed


def _s(seconds) -> str:
    return "—" if seconds is None else f"{seconds:.2f}s"


if __name__ == "__main__":
    main()
