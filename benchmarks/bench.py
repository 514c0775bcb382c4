"""How fast PAWA answers many people at once: raw engine vs end to end (SSE and chat websocket).

Starts a live platform of its own on 127.0.0.1 (see benchmarks/live.py: temporary var/,
own Redis, queues and port; the models in var/models are shared), or measures one that is
already running (--url). For each model:

- raw engine, in this process, with the settings the workers use: one prompt at a time, and
  8 prompts from 8 threads at once (concurrent generate() calls); beside it, one CTranslate2
  generate_batch of 8 prompts with the same compute type and threads (what batching could give);
- end to end through `/v1/chat/completions` with stream=true (official openai SDK) and through
  the chat websocket (`/ws/chat/`), at 1, 2, 4, 8, 16 concurrent streams: aggregate tok/s,
  per-stream decode tok/s, time to first token (TTFT) p50/p95, inter-token gap p95;
- fairness: user A sends a burst of 6 requests, user B one request once A's are admitted;
- resident memory of the platform's processes.

Greedy (temperature 0), short distinct prompts, at most --tokens new tokens per answer.
Every concurrent stream is its own account, with its API limits lifted so they never throttle
the measurement. Writes benchmarks/results/latest.json, latest.md (tables) and latest.png
(chart); --quick writes quick.* instead. Prints numbers; asserts nothing.

    python benchmarks/bench.py [--models smollm2-135m-instruct,gemma3-270m] [--streams 1,2,4,8,16]
                               [--tokens 64] [--quick] [--url http://127.0.0.1:8000]
                               [--update-readme] [--render benchmarks/results/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import inspect
import json
import os
import platform as host_platform
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import live  # noqa: E402

RESULTS = live.ROOT / "benchmarks" / "results"
README = live.ROOT / "README.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
BUILTIN_MODELS = ["smollm2-135m-instruct", "gemma3-270m"]
TRANSPORTS = ("sse", "websocket")
FAIRNESS_BURST = 6
BUSY_PERCENT = 10  # CPU share used by other work that makes a measurement doubtful
NOISY_PERCENT = 25  # … and that marks it in the README's table
# Short, distinct prompts (English and Swahili) that invite answers of a few sentences.
PROMPTS = [
    "Write a short story about a lion and a hare.",
    "Explain step by step how to cook ugali.",
    "Describe the history of Zanzibar.",
    "Write a letter to a friend about a holiday in Arusha.",
    "Explain how a farmer grows maize, from seed to harvest.",
    "List ten animals of the Serengeti and describe each.",
    "Explain how rain forms.",
    "Describe a busy market in Dar es Salaam.",
    "Andika hadithi fupi kuhusu simba na sungura.",
    "Eleza jinsi ya kupika ugali hatua kwa hatua.",
    "Eleza umuhimu wa Mlima Kilimanjaro kwa Tanzania.",
    "Taja faida za elimu kwa jamii.",
    "Explain why the sky is blue.",
    "Write a poem about the Indian Ocean.",
    "How does a bicycle work?",
    "Give advice to a student starting university.",
    "Describe how coffee is grown in Kilimanjaro.",
    "Explain what a computer virus is.",
    "Eleza faida za kunywa maji kila siku.",
    "Taja wanyama watano wanaopatikana Serengeti.",
    "Write a recipe for chapati.",
    "Explain how mobile money works.",
    "Describe the life of a fisherman on Lake Victoria.",
    "Explain how to plant a tree.",
]


# Numbers --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value, digits: int = 3):
    return None if value is None else round(value, digits)


def summarize(records: list[live.StreamRecord], wall: float, streams: int) -> dict:
    ok = [r for r in records if r.error is None and r.done is not None]
    tokens = sum(r.tokens for r in ok)
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    rates = [r.decode_rate for r in ok if r.decode_rate is not None]
    gaps = [gap for r in ok for gap in r.gaps()]
    return {
        "streams": streams,
        "requests": len(records),
        "errors": len(records) - len(ok),
        "error_samples": sorted({r.error or "no end" for r in records if r not in ok})[:3],
        "tokens": tokens,
        "tokens_per_answer": rounded(tokens / len(ok), 1) if ok else None,
        "wall_s": rounded(wall),
        "aggregate_tok_s": rounded(tokens / wall, 1) if wall > 0 else None,
        "per_stream_tok_s_p50": rounded(statistics.median(rates), 1) if rates else None,
        "per_stream_tok_s_min": rounded(min(rates), 1) if rates else None,
        "ttft_p50_s": rounded(percentile(ttfts, 50)),
        "ttft_p95_s": rounded(percentile(ttfts, 95)),
        "ttft_max_s": rounded(max(ttfts)) if ttfts else None,
        "itl_p95_ms": rounded(1000 * percentile(gaps, 95), 1) if gaps else None,
        "records": [r.summary() for r in records],
    }


# Raw engine ------------------------------------------------------------------------------


def engine_options(engine_class) -> dict:
    """The keyword options the workers' engine gets, read from Django settings.

    Only options the Engine constructor accepts are passed, so that it may gain new ones:
    an option NAME is taken from the setting PAWA_ENGINE_NAME or PAWA_NAME when one exists
    (PAWA_ENGINE_INTER_THREADS is the worker concurrency today).
    """
    from django.conf import settings

    parameters = inspect.signature(engine_class.__init__).parameters
    options = {}
    if "device" in parameters:
        options["device"] = settings.PAWA_DEVICE
    for name, parameter in parameters.items():
        if name in ("self", "model_dir", "device") or parameter.kind not in (
                parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            continue
        for setting in (f"PAWA_ENGINE_{name.upper()}", f"PAWA_{name.upper()}"):
            if hasattr(settings, setting):
                options[name] = getattr(settings, setting)
                break
    if "inter_threads" in options:
        options["inter_threads"] = max(1, int(options["inter_threads"]))
    return options


def greedy_params(sampling_class, tokens: int):
    """Greedy sampling with the API's defaults (no repetition penalty, top_p 1)."""
    wanted = {"temperature": 0.0, "max_tokens": tokens, "repetition_penalty": 1.0, "top_p": 1.0}
    names = {f.name for f in dataclasses.fields(sampling_class)} if dataclasses.is_dataclass(sampling_class) \
        else set(inspect.signature(sampling_class).parameters)
    return sampling_class(**{k: v for k, v in wanted.items() if k in names})


def _generate(engine, params, prompt_text: str, tokens: int, start: threading.Barrier | None = None) -> dict:
    prompt = engine.chat_prompt([{"role": "user", "content": prompt_text}], max_tokens=tokens)
    if start is not None:
        start.wait()
    started = time.perf_counter()
    generation = engine.generate(prompt, params)
    for _delta in generation:
        pass
    ended = time.perf_counter()
    result = generation.result
    return {"started": started, "ended": ended, "tokens": result.completion_tokens,
            "ttft_s": result.time_to_first_token, "total_s": result.total_time,
            "tok_s": result.tokens_per_second, "finish_reason": result.finish_reason}


def _raw_summary(rows: list[dict], wall: float, batch: int, label: str) -> dict:
    tokens = sum(row["tokens"] for row in rows)
    ttfts = [row["ttft_s"] for row in rows if row.get("ttft_s") is not None]
    rates = [row["tok_s"] for row in rows if row.get("tok_s")]
    return {"path": label, "batch": batch, "requests": len(rows), "tokens": tokens,
            "tokens_per_answer": rounded(tokens / len(rows), 1) if rows else None, "wall_s": rounded(wall),
            "aggregate_tok_s": rounded(tokens / wall, 1) if wall > 0 else None,
            "per_stream_tok_s_p50": rounded(statistics.median(rates), 1) if rates else None,
            "ttft_p50_s": rounded(percentile(ttfts, 50)), "ttft_p95_s": rounded(percentile(ttfts, 95))}


def raw_engine(model: str, tokens: int, single_runs: int, meter) -> dict:
    """The engine the workers run, in this process, with their settings: batch 1, then 8 threads."""
    from django.conf import settings

    from inference.engine import Engine, SamplingParams

    options = engine_options(Engine)
    model_dir = Path(settings.PAWA_MODELS_DIR) / model
    engine = Engine(model_dir, **options)
    params = greedy_params(SamplingParams, tokens)
    described = {"options": {k: str(v) for k, v in options.items()}}
    for name in ("device", "compute_type", "intra_threads", "inter_threads"):
        if hasattr(engine, name):
            described[name] = getattr(engine, name)
    try:
        _generate(engine, greedy_params(SamplingParams, 8), PROMPTS[-1], 8)  # first call allocates buffers
        with meter() as cpu:
            rows = [_generate(engine, params, PROMPTS[i % len(PROMPTS)], tokens) for i in range(single_runs)]
        single = _raw_summary(rows, sum(row["ended"] - row["started"] for row in rows), 1, "engine")
        single["other_cpu_percent"] = cpu.other_percent
        batch = 8
        barrier = threading.Barrier(batch)
        rows = [None] * batch

        def run(index: int) -> None:
            rows[index] = _generate(engine, params, PROMPTS[index % len(PROMPTS)], tokens, barrier)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(batch)]
        with meter() as cpu:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        wall = max(r["ended"] for r in rows) - min(r["started"] for r in rows)
        concurrent = _raw_summary(rows, wall, batch, "engine, 8 threads")
        concurrent["other_cpu_percent"] = cpu.other_percent
        ceiling = ctranslate2_batch(engine, model_dir, tokens, batch, meter)
    finally:
        close = getattr(engine, "close", None)
        if close:
            close()
        del engine
        gc.collect()
    return {"engine": described, "rows": [single, concurrent] + ([ceiling] if ceiling else [])}


def ctranslate2_batch(engine, model_dir: Path, tokens: int, batch: int, meter) -> dict | None:
    """One CTranslate2 generate_batch of `batch` prompts, exactly `tokens` new tokens each, with
    the engine's compute type and threads: the throughput that batching could reach."""
    compute_type = getattr(engine, "compute_type", None)
    threads = getattr(engine, "intra_threads", None)
    if compute_type is None or threads is None or getattr(engine, "device", "cpu") != "cpu":
        return None
    try:
        import ctranslate2

        generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type=compute_type,
                                          intra_threads=threads, inter_threads=1)
        prompts = [engine.chat_prompt([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                                      max_tokens=tokens).tokens for i in range(batch)]
        options = {"max_length": tokens, "min_length": tokens, "sampling_topk": 1,
                   "include_prompt_in_result": False}
        generator.generate_batch(prompts[:1], **dict(options, max_length=4, min_length=4))
        with meter() as cpu:
            started = time.perf_counter()
            results = generator.generate_batch(prompts, **options)
            wall = time.perf_counter() - started
        produced = sum(len(result.sequences_ids[0]) for result in results)
        del generator
        return {"path": "CTranslate2 generate_batch", "batch": batch, "requests": batch, "tokens": produced,
                "tokens_per_answer": rounded(produced / batch, 1), "wall_s": rounded(wall),
                "aggregate_tok_s": rounded(produced / wall, 1), "per_stream_tok_s_p50": None,
                "ttft_p50_s": None, "ttft_p95_s": None, "other_cpu_percent": cpu.other_percent}
    except Exception as exc:  # noqa: BLE001 - a reference figure only
        print(f"  ({model_dir.name}: CTranslate2 generate_batch skipped: {exc})", file=sys.stderr)
        return None


# End to end ---------------------------------------------------------------------------------


def prompt_for(index: int, offset: int = 0) -> str:
    return PROMPTS[(index + offset) % len(PROMPTS)]


async def sse_level(platform, accounts, model: str, streams: int, rounds: int, tokens: int) -> dict:
    clients = [live.api_client(platform, account) for account in accounts[:streams]]

    async def one(index: int) -> list[live.StreamRecord]:
        return [await live.sse_chat(clients[index], model=model, prompt=prompt_for(index + r * streams),
                                    max_tokens=tokens) for r in range(rounds)]

    try:
        started = time.perf_counter()
        records = [r for rows in await asyncio.gather(*(one(i) for i in range(streams))) for r in rows]
        wall = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    return summarize(records, wall, streams)


async def websocket_level(platform, accounts, conversations, streams: int, rounds: int) -> dict:
    async def one(index: int, ws) -> list[live.StreamRecord]:
        return [await live.websocket_chat(ws, conversation_id=conversations[index][r],
                                          prompt=prompt_for(index + r * streams)) for r in range(rounds)]

    sockets = [await live.websocket_connect(platform, account) for account in accounts[:streams]]
    try:
        started = time.perf_counter()
        records = [r for rows in await asyncio.gather(*(one(i, ws) for i, ws in enumerate(sockets)))
                   for r in rows]
        wall = time.perf_counter() - started
    finally:
        for ws in sockets:
            await ws.close()
    return summarize(records, wall, streams)


def chat_conversations(platform, accounts, model: str, streams: int, rounds: int, tokens: int) -> list:
    """A fresh conversation per answer (greedy, `tokens` at most, no system prompt: the same prompt as
    the API gets), so that no history grows between rounds."""
    return [[live.conversation_create(platform, accounts[i], model=model, temperature=0.0, max_tokens=tokens,
                                      system_prompt="") for _ in range(rounds)] for i in range(streams)]


async def fairness(platform, burst_account, other_account, model: str, tokens: int) -> dict:
    """A sends FAIRNESS_BURST requests; once all are admitted, B sends one."""
    burst_client = live.api_client(platform, burst_account)
    other_client = live.api_client(platform, other_account)
    admitted = asyncio.Event()
    count = 0

    def on_admitted() -> None:
        nonlocal count
        count += 1
        if count == FAIRNESS_BURST:
            admitted.set()

    try:
        burst = [asyncio.create_task(live.sse_chat(burst_client, model=model, prompt=prompt_for(i, 3),
                                                   max_tokens=tokens, on_admitted=on_admitted))
                 for i in range(FAIRNESS_BURST)]
        try:
            await asyncio.wait_for(admitted.wait(), timeout=60)
        except TimeoutError:
            pass  # some of A's requests failed; B goes anyway
        other = await live.sse_chat(other_client, model=model, prompt=prompt_for(FAIRNESS_BURST, 3),
                                    max_tokens=tokens)
        burst_records = await asyncio.gather(*burst)
    finally:
        await burst_client.close()
        await other_client.close()
    ttfts = [r.ttft for r in burst_records if r.ttft is not None]
    finished_first = None
    if other.first is not None:
        finished_first = sum(1 for r in burst_records if r.done is not None and r.done < other.first)
    return {
        "burst": FAIRNESS_BURST,
        "b_ttft_s": rounded(other.ttft),
        "a_ttft_p50_s": rounded(percentile(ttfts, 50)),
        "a_ttft_max_s": rounded(max(ttfts)) if ttfts else None,
        "a_answers_finished_before_b_first_token": finished_first,
        "errors": sum(1 for r in [*burst_records, other] if r.error),
        "records": {"a": [r.summary() for r in burst_records], "b": other.summary()},
    }


async def warm_up(platform, account, conversation_id: int, model: str) -> None:
    """Load the model in the worker(s) and open every path once before measuring."""
    client = live.api_client(platform, account)
    try:
        record = await live.sse_chat(client, model=model, prompt="Hello!", max_tokens=8)
    finally:
        await client.close()
    async with live.websocket_connect(platform, account) as ws:
        chat = await live.websocket_chat(ws, conversation_id=conversation_id, prompt="Hello!")
    for r in (record, chat):
        if r.error:
            raise RuntimeError(f"warm-up of {model} over {r.transport} failed: {r.error}")


def worker_engine_lines(platform, model: str) -> list[str]:
    """What the workers logged when they loaded the model (device, compute type, threads)."""
    log = platform.log_tail(100_000)
    return sorted({m.group(0) for m in re.finditer(rf"Loaded {re.escape(model)} on [^\n]*", log)})


def bench_model(platform, accounts, fair, model: str, args) -> dict:
    print(f"\n== {model}")
    result: dict = {"model": model}
    from pawa.llm.store import model_store

    card = model_store().get(model)
    result["disk_mib"] = round(card.size_on_disk_bytes / live.MIB, 1) if card.size_on_disk_bytes else None
    if not args.skip_raw:
        started = time.perf_counter()
        result["raw"] = raw_engine(model, args.tokens, args.single_runs, lambda: live.CpuMeter(platform))
        for row in result["raw"]["rows"]:
            print(f"  raw {row['path']:28} batch {row['batch']:2}: {row['aggregate_tok_s']:7.1f} tok/s aggregate"
                  f"  TTFT p50 {_ms(row['ttft_p50_s'])}  (other load {row['other_cpu_percent']}%)")
        print(f"  ({time.perf_counter() - started:.0f}s; engine {result['raw']['engine']})")
    result["worker_engine"] = worker_engine_lines(platform, model)
    result["e2e"] = {}
    for transport in args.transports:
        levels = []
        for streams in args.streams:
            rounds = max(1, -(-args.min_requests // streams))
            started = time.perf_counter()
            if transport == "sse":
                with live.CpuMeter(platform) as cpu:
                    level = asyncio.run(sse_level(platform, accounts, model, streams, rounds, args.tokens))
            else:
                conversations = chat_conversations(platform, accounts, model, streams, rounds, args.tokens)
                with live.CpuMeter(platform) as cpu:
                    level = asyncio.run(websocket_level(platform, accounts, conversations, streams, rounds))
            level["other_cpu_percent"] = cpu.other_percent
            levels.append(level)
            print(f"  {transport:9} {streams:2} streams: {level['aggregate_tok_s'] or 0:6.1f} tok/s aggregate, "
                  f"{level['per_stream_tok_s_p50'] or 0:5.1f} per stream, TTFT p50 {_ms(level['ttft_p50_s'])} "
                  f"p95 {_ms(level['ttft_p95_s'])}, gap p95 {level['itl_p95_ms']} ms, "
                  f"{level['tokens_per_answer']} tokens/answer, {level['errors']} errors "
                  f"({time.perf_counter() - started:.0f}s, other load {cpu.other_percent}%)")
            for sample in level["error_samples"]:
                print(f"      error: {sample}")
        result["e2e"][transport] = levels
    if not args.skip_fairness:
        with live.CpuMeter(platform) as cpu:
            result["fairness"] = asyncio.run(fairness(platform, fair[0], fair[1], model, args.tokens))
        result["fairness"]["other_cpu_percent"] = cpu.other_percent
        f = result["fairness"]
        print(f"  fairness: B's TTFT {_ms(f['b_ttft_s'])} vs A's p50 {_ms(f['a_ttft_p50_s'])} / max "
              f"{_ms(f['a_ttft_max_s'])}; {f['a_answers_finished_before_b_first_token']} of A's "
              f"{f['burst']} answers finished before B's first token; {f['errors']} errors")
    result["memory"] = platform.memory()
    print(f"  memory: {_memory_line(result['memory'])}")
    return result


def _ms(seconds) -> str:
    return "—" if seconds is None else f"{1000 * seconds:.0f} ms"


def _memory_line(memory: dict) -> str:
    parts = []
    for role, rows in memory.items():
        if rows:
            parts.append(f"{role} " + " + ".join(f"{row['rss_mib']:.0f}" for row in rows) + " MiB")
    return ", ".join(parts)


# Report -------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = host_platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": host_platform.python_version()}


def git_revision() -> str:
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=live.ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=live.ROOT,
                               capture_output=True, text=True).stdout.strip()
        return revision + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cell(value, unit: str = "", scale: float = 1, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * scale:.{digits}f}{unit}"


def markdown(results: dict) -> str:
    config = results["config"]
    lines = [
        f"Measured {results['when'][:16].replace('T', ' ')} UTC on {results['machine']['cpu']} "
        f"({results['machine']['cores']} cores), commit {results['git']}; "
        f"{results['platform']['workers']} worker process(es) × {results['platform']['worker_concurrency']} "
        f"task(s). Greedy, at most {config['tokens']} new tokens, short distinct prompts"
        f"{' (quick run)' if config['quick'] else ''}. TTFT: request sent → first text received. "
        "Per-stream: decode tok/s after the first token. Gap: pause between two pieces of text "
        "(the platform sends tokens in frames ≤ 50 ms apart). Other load: share of the machine's CPUs "
        "that work outside this benchmark and its platform used meanwhile (it slows everything down).",
        "",
    ]
    for name, model in results["models"].items():
        lines += [f"**{name}**", "",
                  "| path | streams | aggregate tok/s | per-stream tok/s | TTFT p50 | TTFT p95 | gap p95 "
                  "| tokens/answer | errors | other load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in (model.get("raw") or {}).get("rows", []):
            lines.append(f"| raw {row['path']} | {row['batch']} | {_cell(row['aggregate_tok_s'])} "
                         f"| {_cell(row['per_stream_tok_s_p50'])} | {_cell(row['ttft_p50_s'], ' ms', 1000, 0)} "
                         f"| {_cell(row['ttft_p95_s'], ' ms', 1000, 0)} | — | {_cell(row['tokens_per_answer'])} | — "
                         f"| {_cell(row.get('other_cpu_percent'), ' %', 1, 0)} |")
        for transport, levels in model.get("e2e", {}).items():
            label = "SSE /v1/chat/completions" if transport == "sse" else "websocket /ws/chat/"
            for level in levels:
                lines.append(
                    f"| {label} | {level['streams']} | {_cell(level['aggregate_tok_s'])} "
                    f"| {_cell(level['per_stream_tok_s_p50'])} | {_ttft(level['ttft_p50_s'])} "
                    f"| {_ttft(level['ttft_p95_s'])} | {_cell(level['itl_p95_ms'], ' ms', 1, 0)} "
                    f"| {_cell(level['tokens_per_answer'])} | {level['errors']} "
                    f"| {_cell(level.get('other_cpu_percent'), ' %', 1, 0)} |")
        lines.append("")
        fair = model.get("fairness")
        if fair:
            lines.append(
                f"Fairness: user A sends {fair['burst']} requests at once, user B one right after: B's TTFT "
                f"{_ttft(fair['b_ttft_s'])}, A's p50 {_ttft(fair['a_ttft_p50_s'])} (max "
                f"{_ttft(fair['a_ttft_max_s'])}); {fair['a_answers_finished_before_b_first_token']} of A's "
                f"answers were complete before B saw its first token.")
        lines.append(f"Memory after this model (RSS): {_memory_line(model['memory'])}; model on disk "
                     f"{_cell(model.get('disk_mib'), ' MiB', 1, 0)}.")
        lines.append("")
    busiest = max(other_loads(results), default=0)
    if busiest > BUSY_PERCENT:
        lines += [f"Note: work outside this benchmark used up to {busiest:.0f} % of the CPUs during some "
                  "measurements (column “other load”); those rows are slower than on a quiet machine.", ""]
    lines += targets(results)
    return "\n".join(lines).rstrip() + "\n"


def other_loads(results: dict) -> list[float]:
    rows = []
    for model in results["models"].values():
        rows += (model.get("raw") or {}).get("rows", [])
        rows += [level for levels in model.get("e2e", {}).values() for level in levels]
        rows += [model["fairness"]] if model.get("fairness") else []
    return [row["other_cpu_percent"] for row in rows if row.get("other_cpu_percent") is not None]


def _ttft(seconds) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _level(model: dict, transport: str, streams: int) -> dict | None:
    return next((lvl for lvl in model.get("e2e", {}).get(transport, []) if lvl["streams"] == streams), None)


def targets(results: dict) -> list[str]:
    """Issue 9's targets for the 2-core machine, checked against this run (SSE path)."""
    lines = ["Targets of issue 9 (SSE path):", ""]
    for name, model in results["models"].items():
        one, eight = _level(model, "sse", 1), _level(model, "sse", 8)
        raw = next((r for r in (model.get("raw") or {}).get("rows", []) if r["batch"] == 1), None)
        checks = []
        if one and eight and one["aggregate_tok_s"] and eight["aggregate_tok_s"]:
            ratio = eight["aggregate_tok_s"] / one["aggregate_tok_s"]
            checks.append(f"8 streams = {ratio:.1f}× one stream (target ≥ 4×)")
        if eight and eight["ttft_p95_s"] is not None:
            checks.append(f"TTFT p95 at 8 streams {_ttft(eight['ttft_p95_s'])} (target ≤ 1.5 s)")
        if one and raw and one["per_stream_tok_s_p50"] and raw["per_stream_tok_s_p50"]:
            checks.append(f"one stream decodes at {one['per_stream_tok_s_p50'] / raw['per_stream_tok_s_p50']:.2f}× "
                          "the raw engine (target ≥ 0.95×)")
        if one and raw and one["ttft_p50_s"] is not None and raw["ttft_p50_s"] is not None:
            checks.append(f"pipeline TTFT overhead {1000 * (one['ttft_p50_s'] - raw['ttft_p50_s']):.0f} ms p50 "
                          "(target ≤ 30 ms)")
        if checks:
            lines.append(f"- {name}: " + "; ".join(checks) + ".")
    workers = [row for model in results["models"].values() for row in model["memory"].get("worker", [])]
    if workers:
        disk = sum(m.get("disk_mib") or 0 for m in results["models"].values())
        largest = max(row["rss_mib"] for row in workers)
        lines.append(f"- Largest worker process {largest:.0f} MiB with {len(results['models'])} model(s) "
                     f"loaded ({disk:.0f} MiB on disk; target ≤ disk + 300 MiB per model = "
                     f"{disk + 300 * len(results['models']):.0f} MiB).")
    return lines


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"].items())
    figure, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 8), squeeze=False)
    styles = {"sse": ("SSE /v1/chat/completions", "tab:blue", "o"), "websocket": ("websocket /ws/chat/",
                                                                                  "tab:orange", "s")}
    for column, (name, model) in enumerate(models):
        speed, latency = axes[0][column], axes[1][column]
        for transport, levels in model.get("e2e", {}).items():
            label, color, marker = styles[transport]
            xs = [lvl["streams"] for lvl in levels]
            speed.plot(xs, [lvl["aggregate_tok_s"] or 0 for lvl in levels], marker=marker, color=color, label=label)
            latency.plot(xs, [lvl["ttft_p50_s"] or 0 for lvl in levels], marker=marker, color=color,
                         label=f"{label} p50")
            latency.plot(xs, [lvl["ttft_p95_s"] or 0 for lvl in levels], marker=marker, color=color,
                         linestyle="--", label=f"{label} p95")
        for row, style in zip((model.get("raw") or {}).get("rows", []), (":", "-.", "--"), strict=False):
            speed.axhline(row["aggregate_tok_s"] or 0, color="grey", linestyle=style,
                          label=f"raw {row['path']} (batch {row['batch']})")
        streams = results["config"]["streams"]
        for axis in (speed, latency):
            axis.set_xscale("log", base=2)
            axis.set_xticks(streams, [str(s) for s in streams])
            axis.set_xlabel("concurrent streams")
            axis.grid(True, alpha=0.3)
        speed.set_title(name)
        speed.set_ylabel("aggregate tokens/s received")
        speed.set_ylim(bottom=0)
        latency.set_ylabel("time to first token (s)")
        latency.set_ylim(bottom=0)
        speed.legend(fontsize=7)
        latency.legend(fontsize=7)
    figure.suptitle(f"PAWA {results['git']} — {results['machine']['cores']} cores, "
                    f"{results['config']['tokens']} greedy tokens", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def readme_summary(results: dict, name: str) -> str:
    """A compact table for the README: both models side by side, the key rows of latest.md."""
    models = list(results["models"].items())
    streams = [s for s in (1, 8, max(results["config"]["streams"])) if s in results["config"]["streams"]]
    streams = list(dict.fromkeys(streams))
    header = "| | " + " | ".join(f"{model} tok/s | TTFT p50 / p95" for model, _ in models) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(models)]

    def row(label: str, cells: list[tuple[str, str]]) -> None:
        lines.append(f"| {label} | " + " | ".join(f"{a} | {b}" for a, b in cells) + " |")

    raw_labels = {"engine": "raw engine, one prompt", "engine, 8 threads": "raw engine, 8 prompts at once",
                  "CTranslate2 generate_batch": "CTranslate2 batch of 8 (what batching could give)"}
    for path, label in raw_labels.items():
        cells = []
        for _name, model in models:
            found = next((r for r in (model.get("raw") or {}).get("rows", []) if r["path"] == path), None)
            cells.append((_cell(found["aggregate_tok_s"]) + _noisy(found) if found else "—",
                          f"{_ttft(found['ttft_p50_s'])} / {_ttft(found['ttft_p95_s'])}"
                          if found and found["ttft_p50_s"] is not None else "—"))
        row(label, cells)
    for transport, label in (("sse", "SSE"), ("websocket", "chat websocket")):
        for count in streams:
            cells = []
            for _name, model in models:
                level = _level(model, transport, count)
                cells.append((_cell(level["aggregate_tok_s"]) + _noisy(level) if level else "—",
                               f"{_ttft(level['ttft_p50_s'])} / {_ttft(level['ttft_p95_s'])}" if level else "—"))
            row(f"{label}, {count} stream{'s' if count > 1 else ''}", cells)
    cells = []
    for _name, model in models:
        fair = model.get("fairness")
        cells.append(("—", f"B {_ttft(fair['b_ttft_s'])} vs A {_ttft(fair['a_ttft_p50_s'])}{_noisy(fair)}"
                      if fair else "—"))
    row(f"fairness: A sends {FAIRNESS_BURST}, then B sends 1", cells)
    workers = [max((r["rss_mib"] for r in model["memory"].get("worker", [])), default=0) for _n, model in models]
    config = results["config"]
    return "\n".join([
        f"{results['machine']['cores']} cores ({results['machine']['cpu']}), commit {results['git']}, "
        f"{results['when'][:10]}; greedy, ≤ {config['tokens']} tokens per answer; tok/s is the aggregate "
        f"received by all streams. Largest worker process: {max(workers, default=0):.0f} MiB. "
        f"Every row, with per-stream speed, gaps, errors and the load other work put on the machine: "
        f"[benchmarks/results/{name}.md](benchmarks/results/{name}.md).",
        "",
        *lines,
        *(["", f"\\* other work used more than {NOISY_PERCENT} % of the machine's CPUs during this measurement: "
           "it is slower than the code is."] if any("*" in line for line in lines[2:]) else []),
        "",
        f"![Throughput and time to first token by concurrent streams](benchmarks/results/{name}.png)",
        "",
    ])


def _noisy(row: dict) -> str:
    load = row.get("other_cpu_percent")
    return "\\*" if load is not None and load > NOISY_PERCENT else ""


def update_readme(table: str) -> bool:
    text = README.read_text()
    if README_START not in text or README_END not in text:
        return False
    before, rest = text.split(README_START, 1)
    _old, after = rest.split(README_END, 1)
    README.write_text(f"{before}{README_START}\n{table}{README_END}{after}")
    return True


# Main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="measure a platform already running at this URL (127.0.0.1 only), "
                                      "started from this checkout with the same environment")
    parser.add_argument("--models", help="comma-separated (default: the built-in models)")
    parser.add_argument("--streams", help="concurrent streams per level (default 1,2,4,8,16; quick 1,8)")
    parser.add_argument("--tokens", type=int, help="new tokens per answer at most (default 64; quick 32)")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="sse,websocket")
    parser.add_argument("--min-requests", type=int, help="answers per level at least (streams loop; "
                                                          "default 2, so one stream is measured twice)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few minutes); writes quick.*")
    parser.add_argument("--skip-raw", action="store_true", help="no raw engine measurement")
    parser.add_argument("--skip-fairness", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="keep the platform's var/ directory and log")
    parser.add_argument("--name", help="file names under benchmarks/results (default latest, or quick)")
    parser.add_argument("--update-readme", action="store_true",
                        help="copy the table into README.md between the bench markers")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: write the .md and .png (and README) again from saved results")
    args = parser.parse_args()
    args.models = (args.models or ",".join(BUILTIN_MODELS)).split(",")
    args.streams = [int(s) for s in (args.streams or ("1,8" if args.quick else "1,2,4,8,16")).split(",")]
    args.tokens = args.tokens or (32 if args.quick else 64)
    args.transports = [t for t in args.transports.split(",") if t]
    unknown = set(args.transports) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transport(s): {', '.join(sorted(unknown))}")
    args.min_requests = args.min_requests or 2
    args.single_runs = 2 if args.quick else 3
    args.name = args.name or (args.render.stem if args.render else "quick" if args.quick else "latest")
    return args


def main() -> None:
    args = parse_args()
    if args.render:
        write(json.loads(args.render.read_text()), args)
        return
    begun = time.perf_counter()
    if args.url:
        platform = live.LivePlatform.attach(args.url)
    else:
        print("Starting an isolated platform…")
        # Per-user concurrency for the chat; the API's is lifted per account (ApiLimits).
        platform = live.LivePlatform.start(label="bench", env={"PAWA_MAX_CONCURRENT_GENERATIONS": "1000"})
        print(f"  ready at {platform.url} in {time.perf_counter() - begun:.0f}s")
    created = []
    try:
        live.django_setup()
        from django.conf import settings

        tag = uuid.uuid4().hex[:6]
        accounts = [live.create_account(f"bench-{tag}-{i}@example.invalid", unlimited=True)
                    for i in range(max(args.streams))]
        fair = [live.create_account(f"bench-{tag}-{who}@example.invalid", unlimited=True) for who in ("a", "b")]
        created = [a.user_id for a in [*accounts, *fair]]
        results = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git": git_revision(),
            "machine": machine(),
            "platform": {"url": platform.url, "started_by_bench": platform.process is not None,
                         "workers": int(os.environ.get("PAWA_WORKERS", "1")),
                         "worker_concurrency": int(os.environ.get("PAWA_WORKER_CONCURRENCY", "1")),
                         "device": settings.PAWA_DEVICE, "stream_flush_ms": settings.PAWA_STREAM_FLUSH_MS},
            "config": {"models": args.models, "streams": args.streams, "tokens": args.tokens,
                       "transports": args.transports, "quick": args.quick, "min_requests": args.min_requests,
                       "fairness_burst": FAIRNESS_BURST},
            "memory_at_start": platform.memory(),
            "models": {},
        }
        # Every model loaded in the worker(s) first: loading one must not overlap a measurement.
        for model in args.models:
            conversation = live.conversation_create(platform, accounts[0], model=model, temperature=0.0,
                                                    max_tokens=8, system_prompt="")
            asyncio.run(warm_up(platform, accounts[0], conversation, model))
        for model in args.models:
            results["models"][model] = bench_model(platform, accounts, fair, model, args)
        results["duration_s"] = round(time.perf_counter() - begun)
    finally:
        if platform.process is None and created:
            from django.contrib.auth import get_user_model

            get_user_model().objects.filter(id__in=created).delete()
        platform.stop(keep_logs=args.keep_logs)
    write(results, args)


def write(results: dict, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{args.name}.json"
    if not args.render:
        json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    table = markdown(results)
    (RESULTS / f"{args.name}.md").write_text(f"# PAWA benchmark ({args.name})\n\n{table}")
    chart(results, RESULTS / f"{args.name}.png")
    print(f"\n{table}")
    if args.render:
        print(f"Wrote {args.name}.md and {args.name}.png from {args.render}")
    else:
        print(f"Wrote {json_path.relative_to(live.ROOT)} (.md, .png) in {results['duration_s']}s")
    if args.update_readme:
        if update_readme(readme_summary(results, args.name)):
            print("Updated the Performance table in README.md")
        else:
            print(f"README.md has no {README_START} … {README_END} markers; not updated", file=sys.stderr)


if __name__ == "__main__":
    main()
