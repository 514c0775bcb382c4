"""The engine: one loaded CTranslate2 model that streams answers token by token.

Load once per worker process (`Engine.load`); it is safe to use from many threads at once:
each call to `generate()` becomes a sequence in the model's batch scheduler
(inference/batching.py), which decodes all running sequences together, and each reader turns
its own token ids into text (incremental decoding, stop strings, a repetition guard).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ctranslate2
from tokenizers import Tokenizer

from inference.batching import END, TOKEN, BatchScheduler, Request
from inference.card import ModelCard
from inference.errors import InvalidParameter, ModelError, PromptTooLong
from inference.guided import Guide, guidance_tokenizer, guided_decode, new_matcher
from inference.retrieval import DEFAULT_K, EXAMPLES_FILE, ExampleIndex, last_question
from inference.text import IncrementalDecoder, StopMatcher, render_chat_template

log = logging.getLogger(__name__)

# Tokens that end an assistant turn in the chat formats we know.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>")
MIN_ANSWER_TOKENS = 16
MAX_STOP_STRINGS = 8


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repetition_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Token ids the answer never contains (the API's logit_bias of -100), applied through
    # CTranslate2's suppress_sequences.
    suppress_tokens: tuple[int, ...] = ()
    # None: no log-probabilities; n (0..20): each token's and its n most likely alternatives'.
    logprobs: int | None = None

    def validate(self) -> SamplingParams:
        checks = [
            ("temperature", 0.0 <= self.temperature <= 2.0, "temperature must be between 0 and 2"),
            ("top_p", 0.0 < self.top_p <= 1.0, "top_p must be greater than 0 and at most 1"),
            ("top_k", 0 <= self.top_k <= 1000, "top_k must be between 0 (no limit) and 1000"),
            ("repetition_penalty", 0.5 <= self.repetition_penalty <= 2.0,
             "repetition_penalty must be between 0.5 and 2"),
            ("max_tokens", 1 <= self.max_tokens <= 32768, "max_tokens must be between 1 and 32768"),
            ("seed", self.seed is None or 0 <= self.seed < 2**32, "seed must be between 0 and 2^32-1"),
            ("logprobs", self.logprobs is None or 0 <= self.logprobs <= 20, "top_logprobs must be between 0 and 20"),
            ("stop", len(self.stop) <= MAX_STOP_STRINGS and all(isinstance(s, str) for s in self.stop),
             f"stop must be at most {MAX_STOP_STRINGS} strings"),
        ]
        for name, ok, message in checks:
            if not ok or (isinstance(getattr(self, name), float) and math.isnan(getattr(self, name))):
                raise InvalidParameter(message, param=name)
        return self


@dataclass
class Prompt:
    tokens: list[str]
    dropped_messages: int = 0
    # A chat prompt: the answer starts at its first visible character and ends at the model
    # card's stop strings (a base model's framing); a text completion keeps every space.
    chat: bool = False
    # The conversation ends with a partial assistant message that the answer continues.
    continues: bool = False

    @property
    def length(self) -> int:
        return len(self.tokens)


@dataclass
class GenerationResult:
    text: str = ""
    finish_reason: str = ""  # stop, length, cancelled, error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None
    total_time: float = 0.0
    error: str | None = None
    token_ids: list[int] = field(default_factory=list, repr=False)
    # With SamplingParams.logprobs: one entry per answer token, OpenAI's shape ({"token",
    # "logprob", "bytes", "top_logprobs"}).
    logprobs: list[dict] = field(default_factory=list, repr=False)

    @property
    def tokens_per_second(self) -> float:
        decode_time = self.total_time - (self.time_to_first_token or 0.0)
        if self.completion_tokens < 2 or decode_time <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_time

    def as_dict(self) -> dict:
        data = asdict(self)
        del data["token_ids"], data["logprobs"]
        data["tokens_per_second"] = round(self.tokens_per_second, 2)
        return data


@dataclass
class Generation:
    """An iterator of text deltas; `result` is complete once iteration ends."""

    _deltas: Iterator[str]
    result: GenerationResult = field(default_factory=GenerationResult)

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def complete(self) -> GenerationResult:
        """Consume the rest of the stream and return the final result."""
        for _ in self._deltas:
            pass
        return self.result

    def close(self) -> None:
        close = getattr(self._deltas, "close", None)
        if close:
            close()


def default_threads(card: ModelCard) -> int:
    """The model card's measured choice of cores per batch (int8 SmolLM2 decodes ~1.7x faster
    on one thread than on two of a 2-core machine; float32 Gemma 3 wants both)."""
    return max(1, min(card.threads, os.cpu_count() or 1))


def default_compute_type(device: str, card: ModelCard) -> str:
    """CPU: the card's measured choice. GPU: int8 weights with float16 compute, except for the
    Gemma family, whose activations overflow float16 (OpenNMT/CTranslate2#1956): bfloat16."""
    if device == "cpu":
        return card.compute_type
    return "int8_bfloat16" if card.architecture.startswith("gemma") else "int8_float16"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device not in ("cpu", "cuda"):
        raise ModelError(f"Unknown device {device!r}: use auto, cpu or cuda")
    return device


class PromptBuilder:
    """A model's card and tokenizer: renders and measures prompts without loading the weights.

    The web process uses it to refuse a too-long prompt before anything is queued.
    """

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.card = ModelCard.load(self.model_dir)
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        vocabulary = self.tokenizer.get_vocab()
        ends = {self.card.eos_token, *END_OF_TURN_TOKENS, *self.card.end_tokens}
        self.end_tokens = sorted(token for token in ends if token and token in vocabulary)
        special = {token.content for token in self.tokenizer.get_added_tokens_decoder().values() if token.special}
        self._skip_ids = frozenset(vocabulary[token] for token in special if token in vocabulary)
        self.examples: ExampleIndex | None = None
        self.retrieval_k = 0
        if self.card.retrieval:
            try:
                self.examples = ExampleIndex.load(self.model_dir / self.card.retrieval.get("file", EXAMPLES_FILE))
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"{self.card.name}: its examples cannot be read: {exc}") from exc
            self.retrieval_k = int(self.card.retrieval.get("k", DEFAULT_K))

    # Prompts ---------------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return self.card.context_length

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def _with_bos(self, tokens: list[str]) -> list[str]:
        bos = self.card.bos_token
        if self.card.add_bos and bos and (not tokens or tokens[0] != bos):
            return [bos, *tokens]
        return tokens

    def render_chat(self, messages: list[dict]) -> list[str]:
        """The chat in the model's template, ready for the answer. A conversation that ends with
        an assistant message is rendered without the generation prompt and cut right after
        that message's text, so the answer continues it (prefill, as transformers'
        continue_final_message does)."""
        continues = bool(messages) and messages[-1].get("role") == "assistant"
        partial = str(messages[-1].get("content") or "") if continues else ""
        if continues and not partial.strip():
            messages, continues = messages[:-1], False  # nothing to continue: a new answer
        text = render_chat_template(
            self.card.chat_template, messages, bos_token=self.card.bos_token, eos_token=self.card.eos_token,
            add_generation_prompt=not continues,
        )
        if continues:
            end = text.rfind(partial)
            if end < 0:
                raise ModelError("The model's chat template does not keep the assistant message to continue")
            text = text[:end + len(partial)]
        return self._with_bos(self.tokenize(text))

    def chat_prompt(
        self, messages: list[dict], *, system: str | None = None, max_tokens: int = 512, trim: bool = True
    ) -> Prompt:
        """The chat rendered with the model's template.

        The prompt may take the context less the answer's share, min(max_tokens,
        context_length // 2) tokens. With `trim` (the chat page), a conversation longer than
        that loses its oldest turns: the cut falls just before a user message, the system
        message and the last user message always stay, and `Prompt.dropped_messages` counts
        the messages left out (the system message is never counted). The first kept turn is
        found by binary search, so a long history costs about log2(turns) renders, not one per
        dropped turn. Without `trim` (the API) the whole conversation is kept or refused.
        An adapted model's nearest examples (`retrieved_context`) come right after the system
        message and are always kept, like it.

        The conversation may end with a user message (it must not be empty), a tool result, a
        system message alone (answered as it stands), or an assistant message, which the
        answer continues (`Prompt.continues`).

        Raises InvalidParameter for an empty conversation or an empty last user message, and
        PromptTooLong when the kept prompt leaves fewer than min(max_tokens, MIN_ANSWER_TOKENS)
        tokens of the context for the answer.
        """
        if not messages:
            raise InvalidParameter("The conversation is empty", param="messages")
        if messages[-1].get("role") == "user" and not str(messages[-1].get("content") or "").strip():
            raise InvalidParameter("The message is empty", param="messages")
        continues = messages[-1].get("role") == "assistant" and bool(str(messages[-1].get("content") or "").strip())
        head = [{"role": "system", "content": system}] if system else []
        if messages[0].get("role") == "system" and len(messages) > 1:
            head, messages = [messages[0]], messages[1:]
        head = head + self.retrieved_context(messages)
        budget = self.context_length - min(max_tokens, self.context_length // 2)
        tokens = self.render_chat(head + messages)
        dropped = 0
        if trim and len(tokens) > budget:
            dropped, tokens = self._first_fitting_turn(head, messages, budget)
        if len(tokens) + min(max(1, max_tokens), MIN_ANSWER_TOKENS) <= self.context_length:
            return Prompt(tokens, dropped, chat=True, continues=continues)
        raise PromptTooLong(
            f"The message is too long for this model: {len(tokens)} tokens, the model reads at most "
            f"{self.context_length - MIN_ANSWER_TOKENS} (its context is {self.context_length}).",
            prompt_tokens=len(tokens),
            context_length=self.context_length,
        )

    def retrieved_context(self, messages: list[dict]) -> list[dict]:
        """For a model with examples (an adapted model, `card.retrieval`): the examples nearest
        the last user message as earlier user/assistant turns (inference/retrieval.py); []
        for other models, with no user message, or when no example shares a word with it."""
        if self.examples is None or self.retrieval_k <= 0:
            return []
        question = last_question(messages)
        return self.examples.context(question, self.retrieval_k) if question.strip() else []

    def _first_fitting_turn(self, head: list[dict], messages: list[dict], budget: int) -> tuple[int, list[str]]:
        """The earliest user message from which the chat fits `budget` tokens, and its tokens.

        Fewer messages never render longer, so a binary search over the user messages finds it.
        When not even the last user message fits, that message alone (the caller decides).
        """
        starts = [index for index, message in enumerate(messages) if index > 0 and message.get("role") == "user"]
        if not starts:
            return 0, self.render_chat(head + messages)
        rendered: dict[int, list[str]] = {}
        found: int | None = None
        low, high = 0, len(starts) - 1
        while low <= high:
            middle = (low + high) // 2
            rendered[middle] = self.render_chat(head + messages[starts[middle]:])
            if len(rendered[middle]) <= budget:
                found, high = middle, middle - 1
            else:
                low = middle + 1
        if found is None:
            found = len(starts) - 1  # tried last by the search
        return starts[found], rendered[found]

    def text_prompt(self, text: str) -> Prompt:
        if not text:
            raise InvalidParameter("The prompt is empty", param="prompt")
        tokens = self._with_bos(self.tokenize(text))
        if len(tokens) + 1 > self.context_length:
            raise PromptTooLong(
                f"The prompt is too long for this model: {len(tokens)} tokens, its context is "
                f"{self.context_length}.",
                prompt_tokens=len(tokens),
                context_length=self.context_length,
            )
        return Prompt(tokens)

class Engine(PromptBuilder):
    """A loaded model. `generate()` may be called from many threads at once: the requests are
    batched by the model's `BatchScheduler` (inference/batching.py).

    replicas: batches decoded at once (CTranslate2 `inter_threads`); default: the cores
    divided by `intra_threads` (on CPU; 1 on GPU). max_batch_size: sequences per batch
    (default 8 on CPU, 32 on GPU). time_limit: seconds one generation may run (None: no limit).
    repetition_guard: end an answer that repeats one short phrase over and over (RepetitionGuard).
    Raises ModelError when the model cannot be loaded.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        compute_type: str | None = None,
        intra_threads: int | None = None,
        replicas: int | None = None,
        max_batch_size: int | None = None,
        time_limit: float | None = None,
        repetition_guard: bool = True,
    ):
        super().__init__(model_dir)
        self.repetition_guard = repetition_guard
        self.device = resolve_device(device)
        self.compute_type = compute_type or default_compute_type(self.device, self.card)
        self.intra_threads = intra_threads or default_threads(self.card)
        self.replicas = replicas or default_replicas(self.device, self.intra_threads)
        self.max_batch_size = max_batch_size or (8 if self.device == "cpu" else 32)
        self.time_limit = time_limit
        self.generator = self._new_generator(self.replicas)
        self._seed_lock = threading.Lock()
        self._end_ids = frozenset(self.tokenizer.token_to_id(token) for token in self.end_tokens)
        self.scheduler = BatchScheduler(
            self.generator, id_to_token=self.tokenizer.id_to_token, replicas=self.replicas,
            max_batch_size=self.max_batch_size,
        )
        _live_engines.add(self)

    @classmethod
    def load(cls, model_dir: str | Path, **options) -> Engine:
        started = time.perf_counter()
        engine = cls(model_dir, **options)
        log.info(
            "Loaded %s on %s (%s, %d thread(s) x %d replica(s), batches of up to %d) in %.2fs", engine.card.name,
            engine.device, engine.compute_type, engine.intra_threads, engine.replicas, engine.max_batch_size,
            time.perf_counter() - started,
        )
        return engine

    def _new_generator(self, replicas: int = 1) -> ctranslate2.Generator:
        try:
            return ctranslate2.Generator(
                str(self.model_dir),
                device=self.device,
                compute_type=self.compute_type,
                intra_threads=self.intra_threads if self.device == "cpu" else 0,
                inter_threads=replicas,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"Cannot load model {self.card.name}: {exc}") from exc

    def close(self) -> None:
        """Stop every generation and release the model (CTranslate2 aborts at interpreter exit
        when a generator is still alive)."""
        scheduler, self.scheduler = getattr(self, "scheduler", None), None
        if scheduler is not None:
            scheduler.close()
        self.generator = None

    def stats(self) -> dict:
        return self.scheduler.stats() if self.scheduler else {}

    # Generation ------------------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        user: str = "",
        guide: Guide | None = None,
    ) -> Generation:
        """Stream the answer to a prompt: iterate the result for text deltas.

        cancel: set it to stop the answer (checked between tokens; finish reason "cancelled").
        user: whose request this is, for fair batching. guide: the answer follows this JSON
        schema (inference/guided.py; it runs beside the batch scheduler, not in it).
        Raises InvalidParameter for bad params.
        """
        params.validate()
        result = GenerationResult(prompt_tokens=prompt.length)
        request = self.request(prompt, params, cancel=cancel, user=user)
        generation = Generation(iter(()), result)
        generation._deltas = self._stream(prompt, params, request, result, guide)
        return generation

    def request(self, prompt: Prompt, params: SamplingParams, *, cancel: threading.Event | None = None,
                user: str = "") -> Request:
        """The scheduler request for a prompt: token ids arrive on `request.events` once it is
        submitted (`engine.scheduler.submit`). `generate()` builds on it; tests use it to
        submit in an exact order."""
        return Request(
            tokens=prompt.tokens,
            max_tokens=max(1, min(params.max_tokens, self.context_length - prompt.length)),
            group=self._group(params),
            options=self._decoding_options(params),
            user=user,
            cancel=cancel or threading.Event(),
            deadline=time.monotonic() + self.time_limit if self.time_limit else None,
            generator_factory=self._seeded_factory(params),
            end_ids=self._end_ids,
            logprobs=params.logprobs,
        )

    def _decoding_options(self, params: SamplingParams) -> dict:
        greedy = params.temperature == 0
        return {
            "sampling_topk": 1 if greedy else params.top_k,
            "sampling_topp": 1.0 if greedy else params.top_p,
            "sampling_temperature": 1.0 if greedy else params.temperature,
            "repetition_penalty": params.repetition_penalty,
            "end_token": self.end_tokens,
            **({"suppress_sequences": [[self.tokenizer.id_to_token(t)] for t in params.suppress_tokens]}
               if params.suppress_tokens else {}),
            # Log-probabilities cost little (measured: no change in decode time for return_scores,
            # nor for return_logits_vocab on SmolLM2), but only requests that ask pay for them.
            **({"return_scores": True} if params.logprobs is not None else {}),
            **({"return_logits_vocab": True} if params.logprobs else {}),
        }

    def _group(self, params: SamplingParams) -> tuple:
        options = self._decoding_options(params)
        options["suppress_sequences"] = tuple(sorted(params.suppress_tokens))
        return tuple(sorted((k, v) for k, v in options.items() if k != "end_token"))

    def _seeded_factory(self, params: SamplingParams):
        """A seeded sampled request decodes alone on a fresh generator: CTranslate2 seeds a
        thread's random generator on its first use, so the seed needs new threads."""
        if params.seed is None or params.temperature == 0:
            return None

        def factory():
            with self._seed_lock:
                ctranslate2.set_random_seed(params.seed)
                return self._new_generator(1)

        return factory

    def _token_text(self, token_id: int) -> dict:
        text = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return {"token": text, "bytes": list(text.encode("utf-8"))}

    def _logprob_entry(self, token_id: int, logprob: float, top: list[tuple[int, float]]) -> dict:
        return {**self._token_text(token_id), "logprob": logprob,
                "top_logprobs": [{**self._token_text(t), "logprob": lp} for t, lp in top]}

    def _run_guided(self, request: Request, guide: Guide, seed: int | None) -> None:
        """A guided answer on the generator directly (a thread per answer); it reports to
        `request.events` as the scheduler does."""
        import numpy as np

        def emit(token_id: int) -> None:
            request.generated.append(token_id)
            request.events.put((TOKEN, token_id))

        def should_stop() -> bool:
            late = request.deadline is not None and time.monotonic() >= request.deadline
            return request.cancel.is_set() or request.stop.is_set() or late

        reason, error = "error", None
        try:
            tokenizer = guidance_tokenizer(self.model_dir / "tokenizer.json", sorted(self._end_ids))
            matcher = new_matcher(guide, tokenizer)
            reason, _stats = guided_decode(
                self.generator, request.tokens, matcher, tokenizer=tokenizer, id_to_token=self.tokenizer.id_to_token,
                max_tokens=request.max_tokens, options=request.options, emit=emit, should_stop=should_stop,
                rng=np.random.default_rng(seed),
            )
            if reason == "stopped":
                reason = "cancelled" if request.cancel.is_set() else ("stopped" if request.stop.is_set()
                                                                        else "time_limit")
            elif reason == "error":
                error = f"The answer left its grammar: {matcher.get_error()}"
        except Exception as exc:  # noqa: BLE001 - the reader is told
            log.exception("guided generation failed")
            reason, error = "error", str(exc)
        request.finished = reason
        request.events.put((END, reason, error))

    def _stream(self, prompt: Prompt, params: SamplingParams, request: Request,
                result: GenerationResult, guide: Guide | None = None) -> Iterator[str]:
        started = time.perf_counter()
        scheduler = self.scheduler
        try:
            if scheduler is None:
                raise RuntimeError("The model was unloaded")
            if guide is not None:
                threading.Thread(target=self._run_guided, args=(request, guide, params.seed), daemon=True,
                                 name="pawa-guided").start()
            else:
                scheduler.submit(request)
        except RuntimeError as exc:
            request.finished = "error"
            request.events.put((END, "error", str(exc)))
        decoder = IncrementalDecoder(self.tokenizer, self._skip_ids)
        card_stops = tuple(s for s in self.card.stop if s not in params.stop) if prompt.chat else ()
        stops = StopMatcher(params.stop + card_stops)
        # A JSON answer may repeat a short pattern legitimately (a list of numbers); the grammar
        # and max_tokens bound it instead.
        loops = RepetitionGuard() if self.repetition_guard and guide is None else None
        pieces: list[str] = []
        at_start = prompt.chat and not prompt.continues
        finish = "length"
        try:
            while True:
                message = request.events.get()
                if message[0] == END:
                    reason, error = message[1], message[2]
                    if reason == "error":
                        finish, result.error = "error", error
                        log.error("generation failed: %s", error)
                    elif reason == "cancelled" or request.cancel.is_set():
                        finish = "cancelled"
                    elif reason == "eos":
                        finish = "stop"
                    elif reason == "time_limit":
                        finish, result.error = "length", "time_limit"
                    break
                token_id = message[1]
                if len(message) > 2:
                    result.logprobs.append(self._logprob_entry(token_id, *message[2]))
                if result.time_to_first_token is None:
                    result.time_to_first_token = time.perf_counter() - started
                result.completion_tokens += 1
                result.token_ids.append(token_id)
                delta = decoder.add(token_id)
                if at_start and delta:
                    delta = delta.lstrip()
                    at_start = not delta
                delta = stops.feed(delta)
                if stops.stopped:
                    finish = "stop"
                if delta:
                    pieces.append(delta)
                    yield delta
                if stops.stopped:
                    break
                if request.cancel.is_set():
                    finish = "cancelled"
                    break
                if loops is not None and loops.add(token_id):
                    finish, result.error = "length", "repetition"
                    log.info("generation ended early: the same %d token(s) repeated", loops.period)
                    break
            if finish in ("length", "stop") and not stops.stopped:
                tail = decoder.flush()
                tail = stops.feed(tail.lstrip() if at_start else tail) + stops.flush()
                if tail:
                    pieces.append(tail)
                    yield tail
        except GeneratorExit:
            finish = "cancelled"
            raise
        finally:
            if request.finished is None and scheduler is not None:
                scheduler.withdraw(request)
            result.text = "".join(pieces)
            result.finish_reason = finish
            result.total_time = time.perf_counter() - started


# A CTranslate2 generator still alive at interpreter exit can abort the process ("terminate
# called without an active exception"): close every engine while the interpreter still runs.
_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


@atexit.register
def _close_live_engines() -> None:
    for engine in list(_live_engines):
        engine.close()


def default_replicas(device: str, intra_threads: int) -> int:
    """Batches decoded at once: one per `intra_threads` cores on CPU (measured on 2 cores,
    SmolLM2 float32, 64 tokens: 2 replicas x batch 8 = 189 tok/s; 4 x 4 = 130; 1 x 16 = 102),
    one on GPU (a GPU batch is already parallel)."""
    if device != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, intra_threads))


class RepetitionGuard:
    """Detects a runaway answer: the last tokens repeat one short phrase over and over.

    True once the last `min_span` tokens (at least `min_repeats` periods) are one phrase of
    1..max_period tokens repeated. O(max_period) per token: for each period p it keeps the
    length of the current run of tokens equal to the token p positions earlier.
    """

    def __init__(self, max_period: int = 16, min_repeats: int = 8, min_span: int = 32):
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.min_span = min_span
        self._tokens: list[int] = []
        self._runs = [0] * (max_period + 1)
        self.period = 0

    def add(self, token_id: int) -> bool:
        tokens = self._tokens
        tokens.append(token_id)
        n = len(tokens)
        for p in range(1, self.max_period + 1):
            if n > p and tokens[-1] == tokens[-1 - p]:
                self._runs[p] += 1
            else:
                self._runs[p] = 0
            span = self._runs[p] + p
            if span >= max(self.min_span, p * self.min_repeats):
                self.period = p
                return True
        if n > 4 * self.min_span * self.max_period:
            del tokens[: n - self.max_period - 1]
        return False
