"""The batch scheduler: every running generation of one loaded model advances together.

CTranslate2 decodes a batch of prompts in one `generate_batch` call and reports each new token
through a per-step `callback` (`step.batch_id`, `step.token_id`); returning True from the
callback ends that one sequence. It has no continuous batching (OpenNMT/CTranslate2#1333): a
batch cannot take new sequences once it runs. So the scheduler forms batches itself:

- Each of the model's replicas (CTranslate2 `inter_threads`, one per `intra_threads` cores)
  runs one batch at a time, of up to `max_batch_size` sequences.
- A request that arrives while a replica is idle starts at once.
- A request that arrives while every replica is busy joins at the next batch boundary, and
  the scheduler makes boundaries come soon: a batch that is still young (at most
  `join_steps` tokens generated) and has room ends early so it can re-form with the
  newcomers; any batch that has run `slice_seconds` ends early when a request has waited
  that long. Its unfinished sequences continue in the next batch from their prompt plus the
  tokens generated so far (one prefill; the text stream of each answer goes on unbroken).
- Sampling settings (temperature, top-k, top-p, repetition penalty) apply to a whole batch,
  so a batch holds requests with equal settings; prompts in one batch must have similar
  lengths, because CTranslate2 forwards only the shortest prompt's length at once and feeds
  the rest of longer prompts one step at a time.
- Fairness: batches are filled round-robin over users, users with fewer sequences already
  running first, and within that, requests with fewer generated tokens first (least attained
  service), so one user's burst never starves another user's first token.

Cancellation is a `threading.Event` per request, checked by the callback between tokens (no
I/O per token). A per-request wall-time limit ends a sequence with finish reason "length".
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Messages from the scheduler to a request's reader.
TOKEN, END = "token", "end"


@dataclass(eq=False)
class Request:
    """One sequence to generate. `events` receives (TOKEN, token_id) and finally (END, reason, error).

    reason: "eos" (an end token), "length" (max_tokens reached), "time_limit", "cancelled",
    "stopped" (the reader asked to stop), "error".
    """

    tokens: list[str]  # prompt tokens
    max_tokens: int  # tokens this request may still generate in total
    group: tuple  # sampling settings shared by a batch
    options: dict  # generate_batch keyword options for this group
    user: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() after which generation stops
    generator_factory: Callable | None = None  # a private generator (seeded sampling)
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    generated: list[int] = field(default_factory=list)
    submitted: float = field(default_factory=time.monotonic)
    sequence: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    finished: str | None = None
    paused: bool = False
    end_ids: frozenset[int] = frozenset()
    # None: no log-probabilities; n: each token's log-probability and the n most likely
    # alternatives (needs return_scores, and return_logits_vocab for n > 0, in `options`).
    logprobs: int | None = None

    @property
    def length(self) -> int:
        return len(self.tokens) + len(self.generated)

    @property
    def remaining(self) -> int:
        return self.max_tokens - len(self.generated)


@dataclass(eq=False)
class Batch:
    requests: list[Request]
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    yield_requested: bool = False


def token_logprobs(step, top: int) -> tuple[float, list[tuple[int, float]]]:
    """A step's log-probability and its `top` most likely tokens with theirs. CTranslate2 gives
    the log-probability (return_scores) and, with return_logits_vocab, the raw logits."""
    alternatives: list[tuple[int, float]] = []
    if top and step.logits is not None:
        import numpy as np

        logits = np.asarray(step.logits, dtype=np.float32).reshape(-1)
        peak = logits.max()
        normalizer = peak + np.log(np.exp(logits - peak).sum())
        best = np.argpartition(logits, -top)[-top:]
        best = best[np.argsort(-logits[best])]
        alternatives = [(int(i), float(logits[i] - normalizer)) for i in best]
    return float(step.log_prob) if step.log_prob is not None else 0.0, alternatives


class BatchScheduler:
    """Forms and runs batches for one loaded CTranslate2 generator.

    generator: a `ctranslate2.Generator` loaded with `inter_threads=replicas`.
    id_to_token: maps a generated token id back to its token string (a continued sequence is
    re-submitted as tokens).
    replicas: batches run at once (each on its own thread); max_batch_size: sequences per batch.
    join_steps / slice_seconds / length_slack: see the module docstring.
    on_batch: called with the number of sequences of every batch a replica starts (from the
    replica's thread; it must be quick and must not raise), e.g. to record batch sizes.
    """

    def __init__(
        self,
        generator,
        *,
        id_to_token: Callable[[int], str],
        replicas: int = 1,
        max_batch_size: int = 8,
        join_steps: int = 32,
        slice_seconds: float = 1.0,
        length_slack: int = 32,
    ):
        self.generator = generator
        self.id_to_token = id_to_token
        self.replicas = max(1, replicas)
        self.max_batch_size = max(1, max_batch_size)
        self.join_steps = join_steps
        self.slice_seconds = slice_seconds
        self.length_slack = length_slack
        self._cond = threading.Condition()
        self._pending: list[Request] = []
        self._running: list[Batch] = []
        self._closed = False
        self._counter = itertools.count()
        self.tokens_generated = 0
        self.batches_run = 0
        self.on_batch: Callable[[int], None] | None = None
        self._threads = [
            threading.Thread(target=self._replica, name=f"pawa-replica-{n}", daemon=True)
            for n in range(self.replicas)
        ]
        self._threads.append(threading.Thread(target=self._monitor, name="pawa-batch-monitor", daemon=True))
        for thread in self._threads:
            thread.start()

    # Public -------------------------------------------------------------------------------

    def submit(self, request: Request) -> Request:
        """Queue a request; its events arrive on `request.events`. Raises RuntimeError once closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("The model was unloaded")
            request.sequence = next(self._counter)
            self._pending.append(request)
            self._ask_young_batches_to_yield()
            self._cond.notify_all()
        return request

    def withdraw(self, request: Request) -> None:
        """The reader stops: end the sequence at its next step, or now if it is not running."""
        request.stop.set()
        with self._cond:
            if request in self._pending:
                self._pending.remove(request)
                self._end(request, "stopped")

    def stats(self) -> dict:
        """Sequences running and waiting, batch sizes, and totals since load."""
        with self._cond:
            return {
                "replicas": self.replicas,
                "max_batch_size": self.max_batch_size,
                "running": sum(len(b.requests) for b in self._running),
                "waiting": len(self._pending),
                "batches": [len(b.requests) for b in self._running],
                "batches_run": self.batches_run,
                "tokens_generated": self.tokens_generated,
            }

    def close(self, timeout: float = 10.0) -> None:
        """Stop every sequence, end waiting requests, and join the threads."""
        with self._cond:
            self._closed = True
            for request in self._pending:
                self._end(request, "error", "The model was unloaded")
            self._pending.clear()
            for batch in self._running:
                batch.yield_requested = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self.generator = None

    # Forming batches (called with the lock held) -----------------------------------------------

    def _end(self, request: Request, reason: str, error: str | None = None) -> None:
        request.finished = reason
        request.events.put((END, reason, error))

    def _fair_order(self) -> list[Request]:
        running_per_user: dict[str, int] = {}
        for batch in self._running:
            for request in batch.requests:
                running_per_user[request.user] = running_per_user.get(request.user, 0) + 1
        by_user: dict[str, list[Request]] = {}
        for request in sorted(self._pending, key=lambda r: (len(r.generated), r.sequence)):
            by_user.setdefault(request.user, []).append(request)
        users = sorted(by_user, key=lambda u: (running_per_user.get(u, 0), len(by_user[u][0].generated),
                                               by_user[u][0].sequence))
        ordered: list[Request] = []
        for round_ in itertools.zip_longest(*(by_user[u] for u in users)):
            ordered.extend(r for r in round_ if r is not None)
        return ordered

    def _compatible(self, anchor: Request, request: Request, lengths: list[int]) -> bool:
        if request.group != anchor.group or request.generator_factory or anchor.generator_factory:
            return False
        low, high = min(lengths + [request.length]), max(lengths + [request.length])
        return high - low <= max(self.length_slack, low // 4)

    def _form_batch(self) -> Batch | None:
        for request in [r for r in self._pending if r.cancel.is_set() or r.stop.is_set()]:
            self._pending.remove(request)
            self._end(request, "cancelled" if request.cancel.is_set() else "stopped")
        ordered = self._fair_order()
        if not ordered:
            return None
        anchor = ordered[0]
        chosen = [anchor]
        if anchor.generator_factory is None:
            for request in ordered[1:]:
                if len(chosen) >= self.max_batch_size:
                    break
                if self._compatible(anchor, request, [r.length for r in chosen]):
                    chosen.append(request)
        for request in chosen:
            self._pending.remove(request)
            request.paused = False
        batch = Batch(chosen)
        self._running.append(batch)
        return batch

    def _ask_young_batches_to_yield(self) -> None:
        """Newcomers that fit a young batch with room: end it now and re-form it with them."""
        if len(self._running) < self.replicas:
            return  # an idle replica takes them
        for batch in self._running:
            if batch.yield_requested or batch.steps > self.join_steps:
                continue
            room = self.max_batch_size - len(batch.requests)
            if room <= 0 or batch.requests[0].generator_factory:
                continue
            lengths = [r.length for r in batch.requests]
            if any(self._compatible(batch.requests[0], r, lengths) for r in self._pending):
                batch.yield_requested = True

    def _time_slice(self) -> None:
        """A request waited slice_seconds with every replica busy: the longest-running batch yields."""
        if not self._pending or len(self._running) < self.replicas:
            return
        now = time.monotonic()
        if now - min(r.submitted for r in self._pending) < self.slice_seconds:
            return
        candidates = [b for b in self._running if not b.yield_requested and now - b.started >= self.slice_seconds]
        if candidates:
            min(candidates, key=lambda b: b.started).yield_requested = True

    # Threads ----------------------------------------------------------------------------

    def _monitor(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                self._ask_young_batches_to_yield()
                self._time_slice()
                self._cond.wait(timeout=0.05)

    def _replica(self) -> None:
        while True:
            with self._cond:
                batch = None
                while not self._closed and (batch := self._form_batch()) is None:
                    self._cond.wait()
                if self._closed:
                    if batch is not None:
                        for request in batch.requests:
                            self._end(request, "error", "The model was unloaded")
                    return
            if self.on_batch is not None:
                try:
                    self.on_batch(len(batch.requests))
                except Exception:  # noqa: BLE001 - an observer never stops decoding
                    log.exception("batch observer failed")
            self._run(batch)
            with self._cond:
                self._running.remove(batch)
                self.batches_run += 1
                for request in batch.requests:
                    if request.finished is None:
                        if request.remaining <= 0:
                            self._end(request, "length")
                        elif self._closed:
                            self._end(request, "error", "The model was unloaded")
                        else:
                            request.paused = True  # continues in a later batch
                            request.submitted = time.monotonic()
                            self._pending.append(request)
                self._cond.notify_all()

    def _run(self, batch: Batch) -> None:
        requests = batch.requests

        def on_step(step) -> bool:
            request = requests[step.batch_id]
            if request.finished is not None:
                return True
            batch.steps = max(batch.steps, step.step + 1)
            token_id = step.token_id
            if token_id in request.end_ids:
                self._end(request, "eos")
                return True
            request.generated.append(token_id)
            self.tokens_generated += 1
            if request.logprobs is None:
                request.events.put((TOKEN, token_id))
            else:
                request.events.put((TOKEN, token_id, token_logprobs(step, request.logprobs)))
            if request.cancel.is_set():
                self._end(request, "cancelled")
            elif request.stop.is_set():
                self._end(request, "stopped")
            elif request.remaining <= 0:
                self._end(request, "length")
            elif request.deadline is not None and time.monotonic() >= request.deadline:
                self._end(request, "time_limit")
            elif batch.yield_requested:
                return True  # paused: re-submitted after the batch ends
            else:
                return False
            return True

        prompts = [r.tokens + [self.id_to_token(t) for t in r.generated] for r in requests]
        options = dict(requests[0].options, max_length=max(1, max(r.remaining for r in requests)))
        generator = self.generator
        try:
            if requests[0].generator_factory is not None:
                generator = requests[0].generator_factory()
            generator.generate_batch(prompts, callback=on_step, include_prompt_in_result=False, beam_size=1,
                                     **options)
        except Exception as exc:  # noqa: BLE001 - every reader of the batch is told
            log.error("batch of %d failed: %s", len(requests), exc)
            for request in requests:
                if request.finished is None:
                    self._end(request, "error", str(exc))
        finally:
            if generator is not self.generator:
                del generator
        for request in requests:
            # A sequence that reached max_length without our callback saying so, or ended by
            # an end token CTranslate2 did not report, is complete.
            if request.finished is None and not batch.yield_requested:
                self._end(request, "length" if request.remaining <= 0 else "eos")
