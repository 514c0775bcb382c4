"""Resident memory (RSS) of an inference worker process per built-in model: idle with the model
loaded, and at its peak while it writes 8 answers in one batch. The deploy guide's sizing
table comes from this script.

    python benchmarks/worker_memory.py                    # both built-in models
    python benchmarks/worker_memory.py --models gemma3-270m --tokens 64

For each model it starts a platform of its own (`manage.py serve`, one worker process with
that model preloaded, one engine replica so the 8 answers share one batch; see
benchmarks/live.py), reads the worker's RSS once the model is loaded, then sends 8 API
requests at once and samples the RSS every 50 ms until they are answered. The batch sizes the
worker really ran are read back from /metrics (`pawa_batch_size`). Each model runs in a
subprocess of this script, because Django in this process reads one platform's settings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = ["smollm2-135m-instruct", "gemma3-270m"]
PROMPTS = ["Tell me about the Serengeti.", "Describe Mount Kilimanjaro.", "Write about Lake Victoria.",
           "Explain how rain forms.", "Describe the city of Dar es Salaam.", "Tell me about elephants.",
           "Explain what a river delta is.", "Describe the island of Zanzibar."]


def _metric_lines(url: str, name: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return [line for line in response.read().decode().splitlines() if line.startswith(name)]


def measure_one(model: str, tokens: int, streams: int) -> dict:
    """Start a platform for `model`, measure its worker; the numbers as a dict (MiB, counts)."""
    from benchmarks.live import MIB, LivePlatform, create_account, django_setup

    platform = LivePlatform.start(label="memory", env={
        "PAWA_DEFAULT_MODEL": model, "PAWA_PRELOAD_MODEL": "1", "PAWA_WORKERS": "1",
        "PAWA_ENGINE_REPLICAS": "1", "PAWA_MAX_BATCH_SIZE": str(streams),
    })
    try:
        django_setup()
        deadline = time.monotonic() + 120
        while not any(f'model="{model}"' in line for line in _metric_lines(platform.url, "pawa_worker_models")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{model} was not loaded in time\n{platform.log_tail()}")
            time.sleep(0.5)
        time.sleep(2.0)  # settle after loading
        workers = platform.processes()["worker"]
        worker = max(workers, key=lambda proc: proc.memory_info().rss)
        idle = worker.memory_info().rss / MIB
        web = max((proc.memory_info().rss for proc in platform.processes()["web"]), default=0) / MIB
        account = create_account("memory@example.com", unlimited=True)
        peak, done = idle, threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, worker.memory_info().rss / MIB)
                time.sleep(0.05)

        def ask(prompt: str, results: list):
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
                               "max_tokens": tokens, "temperature": 0}).encode()
            request = urllib.request.Request(f"{platform.url}/v1/chat/completions", data=body, headers={
                "Authorization": f"Bearer {account.api_key}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as response:
                results.append(json.loads(response.read())["usage"]["completion_tokens"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: list[int] = []
        started = time.monotonic()
        threads = [threading.Thread(target=ask, args=(PROMPTS[i % len(PROMPTS)], results)) for i in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        after = worker.memory_info().rss / MIB
        batches = {line.split("le=")[1].split('"')[1]: float(line.rsplit(" ", 1)[1])
                   for line in _metric_lines(platform.url, "pawa_batch_size_bucket")}
        return {"model": model, "idle_mib": round(idle, 1), "peak_mib": round(peak, 1), "after_mib": round(after, 1),
                "web_mib": round(web, 1), "answers": len(results), "completion_tokens": sum(results),
                "seconds": round(seconds, 1), "streams": streams, "batch_size_buckets": batches}
    finally:
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.tokens, args.streams)))
        return
    rows = []
    for model in args.models.split(","):
        result = subprocess.run([sys.executable, __file__, "--one", model, "--tokens", str(args.tokens),
                                 "--streams", str(args.streams)], capture_output=True, text=True,
                                env=dict(os.environ), cwd=ROOT)
        if result.returncode != 0:
            sys.exit(f"{model}: the measurement failed\n{result.stderr[-4000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"| model | worker idle, model loaded | worker peak, {args.streams} answers in one batch | web process |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['idle_mib']:.0f} MiB | {row['peak_mib']:.0f} MiB | {row['web_mib']:.0f} MiB |")
    for row in rows:
        print(f"{row['model']}: {row['answers']} answers, {row['completion_tokens']} tokens in {row['seconds']} s; "
              f"batch-size histogram (cumulative, le): {row['batch_size_buckets']}")


if __name__ == "__main__":
    main()
