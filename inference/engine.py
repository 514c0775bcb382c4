"""The engine: one loaded CTranslate2 model that streams answers token by token.

Load once per worker process (`Engine.load`); it is safe to use from several threads at
once: every generation has its own decoder state, and CTranslate2 queues the requests on
its `inter_threads` replicas. The callback-per-step design also lets a scheduler batch many
prompts into one `generate_batch` call later, dispatching steps by `batch_id`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ctranslate2
from tokenizers import Tokenizer

from inference.card import ModelCard
from inference.errors import InvalidParameter, ModelError, PromptTooLong
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

    def validate(self) -> SamplingParams:
        checks = [
            ("temperature", 0.0 <= self.temperature <= 2.0, "temperature must be between 0 and 2"),
            ("top_p", 0.0 < self.top_p <= 1.0, "top_p must be greater than 0 and at most 1"),
            ("top_k", 0 <= self.top_k <= 1000, "top_k must be between 0 (no limit) and 1000"),
            ("repetition_penalty", 0.5 <= self.repetition_penalty <= 2.0,
             "repetition_penalty must be between 0.5 and 2"),
            ("max_tokens", 1 <= self.max_tokens <= 32768, "max_tokens must be between 1 and 32768"),
            ("seed", self.seed is None or 0 <= self.seed < 2**32, "seed must be between 0 and 2^32-1"),
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

    @property
    def tokens_per_second(self) -> float:
        decode_time = self.total_time - (self.time_to_first_token or 0.0)
        if self.completion_tokens < 2 or decode_time <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_time

    def as_dict(self) -> dict:
        data = asdict(self)
        del data["token_ids"]
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
    """PAWA_INTRA_THREADS, else the model card's measured choice (int8 SmolLM2 decodes ~1.7x
    faster on one thread than on two of a 2-core machine; float32 Gemma 3 wants both)."""
    configured = os.environ.get("PAWA_INTRA_THREADS")
    return int(configured) if configured else max(1, min(card.threads, os.cpu_count() or 1))


def default_compute_type(device: str, card: ModelCard) -> str:
    """CPU: the card's measured choice. GPU: int8 weights with float16 compute."""
    return card.compute_type if device == "cpu" else "int8_float16"


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
        text = render_chat_template(
            self.card.chat_template, messages, bos_token=self.card.bos_token, eos_token=self.card.eos_token
        )
        return self._with_bos(self.tokenize(text))

    def chat_prompt(self, messages: list[dict], *, system: str | None = None, max_tokens: int = 512) -> Prompt:
        """The chat rendered with the model's template, oldest turns dropped to fit the context."""
        if not messages or messages[-1].get("role") != "user":
            raise InvalidParameter("The conversation must end with a user message", param="messages")
        if not str(messages[-1].get("content", "")).strip():
            raise InvalidParameter("The message is empty", param="messages")
        head = [{"role": "system", "content": system}] if system else []
        if messages[0].get("role") == "system":
            head, messages = [messages[0]], messages[1:]
        budget = self.context_length - min(max_tokens, self.context_length // 2)
        dropped = 0
        while True:
            tokens = self.render_chat(head + messages)
            if len(tokens) <= budget:
                return Prompt(tokens, dropped, chat=True)
            if len(messages) <= 1:
                break
            # Drop the oldest turn (a user message and the answer that followed it).
            cut = 2 if len(messages) > 2 and messages[1].get("role") == "assistant" else 1
            messages = messages[cut:]
            dropped += cut
        if len(tokens) + MIN_ANSWER_TOKENS <= self.context_length:
            return Prompt(tokens, dropped, chat=True)
        raise PromptTooLong(
            f"The message is too long for this model: {len(tokens)} tokens, the model reads at most "
            f"{self.context_length - MIN_ANSWER_TOKENS} (its context is {self.context_length}).",
            prompt_tokens=len(tokens),
            context_length=self.context_length,
        )

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
    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        compute_type: str | None = None,
        intra_threads: int | None = None,
        inter_threads: int = 1,
    ):
        super().__init__(model_dir)
        self.device = resolve_device(device)
        self.compute_type = compute_type or default_compute_type(self.device, self.card)
        self.intra_threads = intra_threads or default_threads(self.card)
        self.inter_threads = inter_threads
        self.generator = self._new_generator()
        self._seed_lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: str | Path, **options) -> Engine:
        started = time.perf_counter()
        engine = cls(model_dir, **options)
        log.info(
            "Loaded %s on %s (%s, %d thread(s)) in %.2fs", engine.card.name, engine.device,
            engine.compute_type, engine.intra_threads, time.perf_counter() - started,
        )
        return engine

    def _new_generator(self) -> ctranslate2.Generator:
        try:
            return ctranslate2.Generator(
                str(self.model_dir),
                device=self.device,
                compute_type=self.compute_type,
                intra_threads=self.intra_threads if self.device == "cpu" else 0,
                inter_threads=self.inter_threads,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"Cannot load model {self.card.name}: {exc}") from exc

    def close(self) -> None:
        self.generator = None

    # Generation ------------------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Generation:
        """Stream the answer to a prompt. Iterate the result for text deltas."""
        params.validate()
        result = GenerationResult(prompt_tokens=prompt.length)
        generation = Generation(iter(()), result)
        generation._deltas = self._stream(prompt, params, cancelled, result)
        return generation

    def _decoding_options(self, prompt: Prompt, params: SamplingParams) -> dict:
        room = self.context_length - prompt.length
        greedy = params.temperature == 0
        return {
            "max_length": max(1, min(params.max_tokens, room)),
            "sampling_topk": 1 if greedy else params.top_k,
            "sampling_topp": 1.0 if greedy else params.top_p,
            "sampling_temperature": 1.0 if greedy else params.temperature,
            "repetition_penalty": params.repetition_penalty,
            "end_token": self.end_tokens,
            "include_prompt_in_result": False,
            "beam_size": 1,
        }

    def _stream(self, prompt, params, cancelled, result: GenerationResult) -> Iterator[str]:
        started = time.perf_counter()
        steps: queue.SimpleQueue = queue.SimpleQueue()
        stop_requested = threading.Event()
        first_step = threading.Event()

        def on_step(step) -> bool:
            steps.put(step)
            first_step.set()
            return stop_requested.is_set() or bool(cancelled())

        options = self._decoding_options(prompt, params)
        generator, seed_lock = self.generator, None
        if params.seed is not None and options["sampling_topk"] != 1:
            # CTranslate2 seeds a thread's random generator on its first use, so a seeded
            # request gets a fresh generator (new worker thread) created under the seed.
            seed_lock = self._seed_lock
            seed_lock.acquire()
            ctranslate2.set_random_seed(params.seed)
            generator = self._new_generator()

        def run():
            try:
                for async_result in generator.generate_batch(
                    [prompt.tokens], asynchronous=True, callback=on_step, **options
                ):
                    async_result.result()
            except Exception as exc:  # noqa: BLE001 - reported to the reader below
                steps.put(exc)
            finally:
                first_step.set()
                steps.put(None)

        worker = threading.Thread(target=run, name="pawa-generate", daemon=True)
        worker.start()
        if seed_lock is not None:
            first_step.wait()
            seed_lock.release()

        decoder = IncrementalDecoder(self.tokenizer, self._skip_ids)
        card_stops = tuple(s for s in self.card.stop if s not in params.stop) if prompt.chat else ()
        stops = StopMatcher(params.stop + card_stops)
        end_ids = {self.tokenizer.token_to_id(token) for token in self.end_tokens}
        pieces: list[str] = []
        at_start = prompt.chat
        finish = "length"
        try:
            while True:
                step = steps.get()
                if step is None:
                    if cancelled():
                        finish = "cancelled"
                    elif result.completion_tokens < options["max_length"]:
                        finish = "stop"  # the model produced an end-of-turn token
                    break
                if isinstance(step, Exception):
                    finish, result.error = "error", str(step)
                    log.error("generation failed: %s", step)
                    break
                if result.time_to_first_token is None:
                    result.time_to_first_token = time.perf_counter() - started
                if step.token_id in end_ids:
                    finish = "stop"
                    continue
                result.completion_tokens += 1
                result.token_ids.append(step.token_id)
                delta = decoder.add(step.token_id)
                if at_start and delta:
                    delta = delta.lstrip()
                    at_start = not delta
                delta = stops.feed(delta)
                if stops.stopped:
                    finish = "stop"
                    stop_requested.set()
                if delta:
                    pieces.append(delta)
                    yield delta
                if stops.stopped:
                    break
                if cancelled():
                    finish = "cancelled"
                    stop_requested.set()
                    break
            if finish in ("length", "stop") and not stops.stopped:
                tail = decoder.flush()
                tail = stops.feed(tail.lstrip() if at_start else tail) + stops.flush()
                if tail:
                    pieces.append(tail)
                    yield tail
        except GeneratorExit:
            finish = "cancelled"
            stop_requested.set()
            raise
        finally:
            stop_requested.set()
            worker.join()
            if generator is not self.generator:
                del generator
            result.text = "".join(pieces)
            result.finish_reason = finish
            result.total_time = time.perf_counter() - started
