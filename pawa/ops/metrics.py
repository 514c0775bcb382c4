"""Prometheus metrics of the whole installation, kept in Redis, exposed at GET /metrics.

Why Redis and not prometheus_client's multiprocess mode: the numbers come from many processes
(every web process counts its HTTP requests; every inference worker counts the generations it
ends and the batches it runs), and PAWA's workers may run on other machines than the web
process (`docker compose up --scale worker=N`, more hosts on the same broker). Multiprocess
mode aggregates files in one directory, so it only sees the processes of one machine (and of
one container unless the directory is shared, where containers' equal pids clash). Every PAWA
process already talks to the same Redis, so each one adds its increments there (HINCRBY on one
hash per metric, under PAWA_REDIS_PREFIX) and any web process reads the sums when scraped.
The counters live as long as Redis's data (it persists to disk), so a process restart does
not reset them; Prometheus's `rate()` handles the rare reset after Redis loses its data.

Cost: an increment is a dict update in memory; a daemon thread writes the pending increments
of its process every FLUSH_SECONDS in one pipelined round trip (and at exit), so a request
never waits on Redis for metrics. A process killed with SIGKILL loses at most that last second.

Gauges that describe shared state (queue length, live workers and their models, answers being
written) are read at scrape time from Redis and the database, not counted.

Series (prometheus_client's exposition format; counters end in `_total`):
- pawa_http_requests_total{endpoint, method, status}: endpoint is the URL pattern's name.
- pawa_generations_total{model, finish_reason, surface}: generations that ended; surface is
  `chat` (web chat) or `api`; finish_reason stop, length, cancelled, error, interrupted.
- pawa_prompt_tokens_total / pawa_completion_tokens_total{model, surface}.
- pawa_time_to_first_token_seconds{model} and pawa_tokens_per_second{model}: histograms.
- pawa_batch_size{model}: histogram of the sequences in each batch a worker decodes
  (inference/batching.py).
- pawa_queue_length, pawa_active_streams (generations being written now), pawa_workers_live,
  pawa_worker_models{worker, model} (1 per model a live worker has loaded).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import redis
from django.conf import settings
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Counter:
    """A counter's name (without `_total`), help text and label names."""

    name: str
    documentation: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Histogram:
    """A histogram's name, help text, label names and upper bucket bounds (ascending; +Inf is added)."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]


HTTP_REQUESTS = Counter("pawa_http_requests", "HTTP requests by endpoint (URL pattern name), method and status.",
                        ("endpoint", "method", "status"))
GENERATIONS = Counter("pawa_generations", "Generations that ended, by model, finish reason and surface (chat or api).",
                      ("model", "finish_reason", "surface"))
PROMPT_TOKENS = Counter("pawa_prompt_tokens", "Prompt tokens read by ended generations.", ("model", "surface"))
COMPLETION_TOKENS = Counter("pawa_completion_tokens", "Completion tokens written by ended generations.",
                            ("model", "surface"))
TTFT = Histogram("pawa_time_to_first_token_seconds", "Time to first token of each generation, in seconds.",
                 ("model",), (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0))
TOKENS_PER_SECOND = Histogram("pawa_tokens_per_second", "Decoding speed of each generation, tokens per second.",
                              ("model",), (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 250.0))
BATCH_SIZE = Histogram("pawa_batch_size", "Sequences decoded together in each batch a worker ran.",
                       ("model",), (1, 2, 4, 8, 16, 32, 64))
COUNTERS = (HTTP_REQUESTS, GENERATIONS, PROMPT_TOKENS, COMPLETION_TOKENS)
HISTOGRAMS = (TTFT, TOKENS_PER_SECOND, BATCH_SIZE)


def _key(name: str) -> str:
    return f"{settings.REDIS_PREFIX}:metrics:{name}"


def _field(*parts) -> str:
    return json.dumps([str(part) for part in parts], separators=(",", ":"))


# Recording (any process) ----------------------------------------------------------------------

class _Buffer:
    """This process's increments not yet written to Redis: {(key, field): amount}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.thread: threading.Thread | None = None
        self.failing = False

    def add(self, key: str, field: str, amount: int) -> None:
        with self.lock:
            self.counts[key, field] += amount
            self._start()

    def add_float(self, key: str, field: str, amount: float) -> None:
        with self.lock:
            self.sums[key, field] += amount
            self._start()

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="pawa-metrics-flush", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Write the pending increments in one round trip; on a Redis error they wait for the
        next flush (never lost while the process lives). `final`: at exit, nothing is kept."""
        with self.lock:
            counts, sums = self.counts, self.sums
            self.counts, self.sums = defaultdict(int), defaultdict(float)
        if not counts and not sums:
            return
        from pawa.generation.redis import sync_client

        try:
            pipe = sync_client().pipeline(transaction=False)
            for (key, field), amount in counts.items():
                pipe.hincrby(key, field, amount)
            for (key, field), amount in sums.items():
                pipe.hincrbyfloat(key, field, amount)
            pipe.execute()
            self.failing = False
        except redis.RedisError as exc:
            if final:
                return
            if not self.failing:  # once per outage, not every second
                log.warning("metrics not written yet: %s", exc)
            self.failing = True
            with self.lock:
                for item, amount in counts.items():
                    self.counts[item] += amount
                for item, amount in sums.items():
                    self.sums[item] += amount


_buffer = _Buffer()
atexit.register(lambda: _buffer.flush(final=True))


def metrics_flush() -> None:
    """Write this process's pending increments to Redis now (tests, shutdown)."""
    _buffer.flush()


def counter_inc(counter: Counter, labels: tuple, amount: int = 1) -> None:
    """Add `amount` (an integer ≥ 0) to the series with these label values (in `counter.labels` order)."""
    if amount:
        _buffer.add(_key(counter.name), _field(*labels), int(amount))


def histogram_observe(histogram: Histogram, labels: tuple, value: float) -> None:
    """Count one observation of `value` in the series with these label values."""
    index = next((i for i, bound in enumerate(histogram.buckets) if value <= bound), len(histogram.buckets))
    key = _key(histogram.name)
    _buffer.add(key, _field(*labels, "b", index), 1)
    _buffer.add(key, _field(*labels, "count"), 1)
    _buffer.add_float(key, _field(*labels, "sum"), float(value))


def http_request_count(*, request, status: int) -> None:
    """Count one HTTP request: the endpoint is the resolved URL pattern's name ("unmatched" for
    a path no pattern matched, e.g. a 404 or a redirect made before routing)."""
    match = getattr(request, "resolver_match", None)
    endpoint = (match.view_name or match.route) if match is not None else "unmatched"
    # Clients choose the method: only known ones become series, so nobody can add series at will.
    method = request.method if request.method in HTTP_METHODS else "other"
    counter_inc(HTTP_REQUESTS, (endpoint, method, status))


def generation_count(generation) -> None:
    """Count an ended generation: by finish reason, its tokens, its TTFT and speed."""
    surface = "api" if generation.source == "api" else "chat"
    model = generation.model_name
    reason = generation.finish_reason or generation.status
    if generation.status == "interrupted":
        reason = "interrupted"
    counter_inc(GENERATIONS, (model, reason, surface))
    counter_inc(PROMPT_TOKENS, (model, surface), generation.prompt_tokens or 0)
    counter_inc(COMPLETION_TOKENS, (model, surface), generation.completion_tokens or 0)
    if generation.time_to_first_token_ms is not None:
        histogram_observe(TTFT, (model,), generation.time_to_first_token_ms / 1000)
    if generation.completion_tokens and generation.tokens_per_second:
        histogram_observe(TOKENS_PER_SECOND, (model,), generation.tokens_per_second)


def batch_observer(model_name: str):
    """A callback for `inference.batching` that records each batch's size for this model."""

    def observe(size: int) -> None:
        histogram_observe(BATCH_SIZE, (model_name,), size)

    return observe


# Reading (the web process that is scraped) ----------------------------------------------------

class RedisCollector(Collector):
    """Yields every series from the sums in Redis and the gauges read at scrape time.

    Raises redis.RedisError when Redis cannot be reached (the view answers 503).
    """

    def collect(self):
        from pawa.generation.redis import sync_client

        client = sync_client()
        pipe = client.pipeline(transaction=False)
        for metric in (*COUNTERS, *HISTOGRAMS):
            pipe.hgetall(_key(metric.name))
        pipe.zcard(settings.PAWA_QUEUE_KEY)
        *stored, queue_length = pipe.execute()
        for metric, values in zip(COUNTERS, stored[:len(COUNTERS)]):
            yield self._counter(metric, values)
        for metric, values in zip(HISTOGRAMS, stored[len(COUNTERS):]):
            yield self._histogram(metric, values)
        yield from self._gauges(queue_length)

    @staticmethod
    def _decode(values: dict) -> list[tuple[list[str], float]]:
        rows = []
        for field, value in values.items():
            field = field.decode() if isinstance(field, bytes) else field
            try:
                rows.append((json.loads(field), float(value)))
            except (TypeError, ValueError):
                continue
        return sorted(rows)

    def _counter(self, metric: Counter, values: dict) -> CounterMetricFamily:
        family = CounterMetricFamily(metric.name, metric.documentation, labels=metric.labels)
        for labels, value in self._decode(values):
            if len(labels) == len(metric.labels):
                family.add_metric(labels, value)
        return family

    def _histogram(self, metric: Histogram, values: dict) -> HistogramMetricFamily:
        family = HistogramMetricFamily(metric.name, metric.documentation, labels=metric.labels)
        series: dict[tuple, dict] = {}
        width = len(metric.labels)
        for parts, value in self._decode(values):
            labels, rest = tuple(parts[:width]), parts[width:]
            entry = series.setdefault(labels, {"b": [0.0] * (len(metric.buckets) + 1), "sum": 0.0})
            if rest[:1] == ["b"] and len(rest) == 2 and rest[1].isdigit() and int(rest[1]) <= len(metric.buckets):
                entry["b"][int(rest[1])] += value
            elif rest == ["sum"]:
                entry["sum"] = value
        bounds = [str(float(bound)) for bound in metric.buckets] + ["+Inf"]
        for labels, entry in sorted(series.items()):
            total, buckets = 0.0, []
            for bound, count in zip(bounds, entry["b"]):
                total += count
                buckets.append((bound, total))
            family.add_metric(list(labels), buckets, entry["sum"])
        return family

    @staticmethod
    def _gauges(queue_length: int):
        from pawa.generation.models import Generation
        from pawa.generation.workers import workers_alive

        yield GaugeMetricFamily("pawa_queue_length", "Generations waiting for a worker.", value=queue_length)
        running = Generation.objects.filter(status=Generation.Status.RUNNING).count()
        yield GaugeMetricFamily("pawa_active_streams", "Generations being written (streamed) now.", value=running)
        workers = workers_alive()
        yield GaugeMetricFamily("pawa_workers_live", "Inference worker processes registered in Redis now.",
                                value=len(workers))
        models = GaugeMetricFamily("pawa_worker_models", "1 for each model a live worker has loaded.",
                                   labels=("worker", "model"))
        for entry in sorted(workers, key=lambda e: e.get("hostname", "")):
            for model in entry.get("models") or []:
                models.add_metric([str(entry.get("hostname", "")), str(model)], 1)
        yield models


def metrics_registry() -> CollectorRegistry:
    """A registry holding only PAWA's collector (the per-process default collectors would
    describe whichever web process happened to answer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector())
    return registry
