"""int8 conversion that keeps float32's accuracy, measured when a model is installed.

Every conversion path (GGUF files, Hugging Face folders) hands `write_model` a function that
builds the float32 CTranslate2 spec. For int8 it then

1. calibrates: a float32 NumPy forward pass over `texts/calibration_*.txt` (Swahili and English)
   records each linear layer's per-channel input maxima (`inference.smoothing.calibrate`);
2. smooths: SmoothQuant folding with the model's α (`inference.smoothing.smooth`);
3. quantizes each weight row to int8 and saves;
4. measures (unless told not to): perplexity on held-out Swahili and English text
   (`texts/heldout_*.txt`, never used for calibration) for float32, plain int8 and smoothed int8;
   greedy agreement of the first 16 tokens with float32 on `texts/prompts.txt`; tok/s and memory
   for each compute type;
5. decides the default compute type: int8 when smoothed int8 is within +3 % perplexity of float32
   on both languages; otherwise it tries smoothing the vocabulary projection too; otherwise
   float32 computation, with the reason written on the model card.

"Plain int8" is the float32 conversion loaded with `compute_type="int8"`: CTranslate2 then
quantizes each weight row at load time with the same per-row scheme the converter uses.
"""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ctranslate2

from inference import smoothing
from inference.errors import ModelError

TEXTS = Path(__file__).resolve().parent / "texts"
PERPLEXITY_LIMIT_PERCENT = 3.0  # the most int8 may add to float32's perplexity, each language
AGREEMENT_TOKENS = 16
SPEED_TOKENS = 32

SpecBuilder = Callable[[], object]
Progress = Callable[[str, int, int], None]


@dataclass
class Int8Settings:
    """How a model is quantized to int8.

    alpha: SmoothQuant's migration strength in [0, 1] (0.5 is the paper's default; chosen per
    built-in model by measurement). output_projection: also smooth the vocabulary projection
    (stores it apart from the embeddings). measure: run the install-time measurements.
    """

    alpha: float = 0.5
    output_projection: bool = False
    measure: bool = True


@dataclass
class Int8Outcome:
    """What the conversion chose and measured, for the model card."""

    compute_type: str
    measurements: dict


def _lines(name: str) -> list[str]:
    return [line for line in (TEXTS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


class Texts:
    """Tokenized calibration and evaluation texts for one model.

    tokenizer: a `tokenizers.Tokenizer`; bos: the token prepended to every sequence, or "".
    """

    def __init__(self, tokenizer, bos: str = ""):
        self.tokenizer = tokenizer
        self.bos = bos

    def tokens(self, text: str) -> list[str]:
        tokens = self.tokenizer.encode(text, add_special_tokens=False).tokens
        return [self.bos, *tokens] if self.bos else tokens

    def ids(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if self.bos:
            bos_id = self.tokenizer.token_to_id(self.bos)
            if bos_id is None:
                raise ModelError(f"The tokenizer does not know its own start token {self.bos!r}")
            ids = [bos_id, *ids]
        return ids

    def calibration(self) -> list[list[int]]:
        return [self.ids(line) for name in ("calibration_sw.txt", "calibration_en.txt") for line in _lines(name)]


def perplexity(generator: ctranslate2.Generator, texts: Texts, language: str) -> float:
    """exp(mean negative log-likelihood) per token over the held-out paragraphs of one language.

    One sequence per `score_batch` call: batched scoring fails on some models (CTranslate2, Gemma 3).
    """
    total, count = 0.0, 0
    for paragraph in _lines(f"heldout_{language}.txt"):
        scores = generator.score_batch([texts.tokens(paragraph)])[0].log_probs
        total += sum(scores)
        count += len(scores)
    return math.exp(-total / max(count, 1))


def greedy(generator: ctranslate2.Generator, texts: Texts, prompts: list[str], tokens: int) -> list[list[int]]:
    results = generator.generate_batch(
        [texts.tokens(prompt) for prompt in prompts], max_length=tokens, sampling_topk=1,
        include_prompt_in_result=False,
    )
    return [result.sequences_ids[0] for result in results]


def _agreement(answers: list[list[int]], reference: list[list[int]]) -> str:
    return f"{sum(a == b for a, b in zip(answers, reference))}/{len(reference)}"


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _quality(directory: Path, compute_type: str, texts: Texts, prompts: list[str]) -> tuple[dict, list]:
    generator = ctranslate2.Generator(str(directory), device="cpu", compute_type=compute_type, intra_threads=1)
    try:
        row = {"ppl_sw": perplexity(generator, texts, "sw"), "ppl_en": perplexity(generator, texts, "en")}
        answers = greedy(generator, texts, prompts, AGREEMENT_TOKENS)
    finally:
        del generator
        gc.collect()
    return row, answers


def _speed(directory: Path, compute_type: str) -> dict:
    """tok/s and memory of one compute type, measured in a fresh process (the resident memory
    of this one is full of freed conversion buffers)."""
    command = [sys.executable, "-m", "inference.quantize", str(directory), compute_type]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=root, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"compute_type": compute_type, "threads": 1, "error": str(exc)[:200]}


def _speed_here(directory: Path, compute_type: str) -> dict:
    from tokenizers import Tokenizer

    texts = Texts(Tokenizer.from_file(str(directory / "tokenizer.json")))
    prompt = texts.tokens(_lines("prompts.txt")[0])
    before = _rss_mib()
    started = time.perf_counter()
    generator = ctranslate2.Generator(str(directory), device="cpu", compute_type=compute_type, intra_threads=1)
    load_s = time.perf_counter() - started
    options = dict(sampling_topk=1, include_prompt_in_result=False, min_length=SPEED_TOKENS)
    generator.generate_batch([prompt], max_length=4, **{**options, "min_length": 4})  # allocates buffers
    started = time.perf_counter()
    result = generator.generate_batch([prompt], max_length=SPEED_TOKENS, **options)[0]
    elapsed = time.perf_counter() - started
    return {"compute_type": compute_type, "threads": 1, "tok_s": round(len(result.sequences_ids[0]) / elapsed, 1),
            "rss_mib": round(_rss_mib() - before), "load_s": round(load_s, 2)}


def _delta(value: float, reference: float) -> float:
    return round(100 * (value / reference - 1), 1)


def _save(spec, directory: Path, quantization: str) -> None:
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(directory))


def write_model(
    build: SpecBuilder, output_dir: Path, quantization: str, texts: Texts, *,
    settings: Int8Settings | None = None, progress: Progress | None = None,
) -> Int8Outcome:
    """Convert the spec that `build()` returns into `output_dir` (which must exist).

    build: returns a fresh float32 `TransformerDecoderModelSpec` each call (called once without
    measuring, twice or three times with). quantization: "int8", "int8_float32" or "float32".
    Returns the default compute type and the measurements for the card. Raises ModelError when the
    model cannot be calibrated.
    """
    settings = settings or Int8Settings()
    if not quantization.startswith("int8"):
        _save(build(), output_dir, quantization)
        return Int8Outcome(compute_type="float32", measurements={})

    spec = build()
    reason = smoothing.supported(spec)
    if reason:
        _save(spec, output_dir, quantization)
        return Int8Outcome(compute_type="int8", measurements={"int8": {"method": "plain", "reason": reason}})
    stats = smoothing.calibrate(spec, texts.calibration(), progress)
    result = smoothing.smooth(spec, stats, settings.alpha, output_projection=settings.output_projection)
    _save(spec, output_dir, quantization)
    del spec
    gc.collect()
    int8 = {"method": "SmoothQuant", **result.as_dict(), "calibration_tokens": stats.tokens}
    if not settings.measure:
        return Int8Outcome(compute_type="int8", measurements={"int8": int8})

    prompts = _lines("prompts.txt")
    steps = 4
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-measure-", dir=output_dir.parent))
    try:
        if progress:
            progress("measure", 0, steps)
        _save(build(), scratch, "float32")
        reference, reference_answers = _quality(scratch, "float32", texts, prompts)
        plain, plain_answers = _quality(scratch, "int8", texts, prompts)
        if progress:
            progress("measure", 1, steps)
        shutil.rmtree(scratch, ignore_errors=True)
        smoothed, smoothed_answers = _quality(output_dir, "int8", texts, prompts)
        if progress:
            progress("measure", 2, steps)

        def row(variant: str, values: dict, answers: list) -> dict:
            return {"variant": variant, "ppl_sw": round(values["ppl_sw"], 2), "ppl_en": round(values["ppl_en"], 2),
                    "ppl_sw_delta": _delta(values["ppl_sw"], reference["ppl_sw"]),
                    "ppl_en_delta": _delta(values["ppl_en"], reference["ppl_en"]),
                    "agreement": _agreement(answers, reference_answers)}

        quality = [row("float32", reference, reference_answers), row("int8", plain, plain_answers),
                   row("int8_smoothed", smoothed, smoothed_answers)]

        def within(values: dict) -> bool:
            return max(values["ppl_sw_delta"], values["ppl_en_delta"]) <= PERPLEXITY_LIMIT_PERCENT

        if not within(quality[-1]) and not settings.output_projection:
            # Second try: smooth the vocabulary projection too (costs a second vocabulary matrix).
            spec = build()
            result = smoothing.smooth(spec, stats, settings.alpha, output_projection=True)
            retry = Path(tempfile.mkdtemp(prefix=".tmp-retry-", dir=output_dir.parent))
            try:
                _save(spec, retry, quantization)
                del spec
                values, answers = _quality(retry, "int8", texts, prompts)
                candidate = row("int8_smoothed", values, answers)
                if (candidate["ppl_sw_delta"] + candidate["ppl_en_delta"]
                        < quality[-1]["ppl_sw_delta"] + quality[-1]["ppl_en_delta"]):
                    for entry in output_dir.iterdir():
                        if entry.is_file() and (retry / entry.name).exists():
                            entry.unlink()
                    for entry in retry.iterdir():
                        shutil.move(str(entry), output_dir / entry.name)
                    quality[-1] = candidate
                    int8.update(result.as_dict())
            finally:
                shutil.rmtree(retry, ignore_errors=True)
        if progress:
            progress("measure", 3, steps)
        speed = [_speed(output_dir, compute_type) for compute_type in ("int8", "float32")]
        if progress:
            progress("measure", 4, steps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    best = quality[-1]
    if within(best):
        compute_type, decision = "int8", {
            "en": f"int8: smoothed int8 is within +{PERPLEXITY_LIMIT_PERCENT:g} % perplexity of float32 "
                  f"on Swahili ({best['ppl_sw_delta']:+.1f} %) and English ({best['ppl_en_delta']:+.1f} %).",
            "sw": f"int8: int8 iliyolainishwa iko ndani ya +{PERPLEXITY_LIMIT_PERCENT:g} % ya perplexity ya "
                  f"float32 kwa Kiswahili ({best['ppl_sw_delta']:+.1f} %) na Kiingereza ({best['ppl_en_delta']:+.1f} %).",
        }
    else:
        compute_type, decision = "float32", {
            "en": f"float32: no int8 variant stayed within +{PERPLEXITY_LIMIT_PERCENT:g} % perplexity of float32 "
                  f"(best: Swahili {best['ppl_sw_delta']:+.1f} %, English {best['ppl_en_delta']:+.1f} %).",
            "sw": f"float32: hakuna toleo la int8 lililobaki ndani ya +{PERPLEXITY_LIMIT_PERCENT:g} % ya perplexity "
                  f"ya float32 (bora: Kiswahili {best['ppl_sw_delta']:+.1f} %, Kiingereza {best['ppl_en_delta']:+.1f} %).",
        }
    measurements = {
        "int8": int8,
        "quality": quality,
        "speed": speed,
        "decision": decision,
        "note": f"Measured at install: CTranslate2 {ctranslate2.__version__}, CPU, 1 thread, greedy; perplexity on "
                f"held-out Swahili and English paragraphs; agreement = the first {AGREEMENT_TOKENS} greedy tokens "
                f"equal to float32's on {len(prompts)} prompts.",
    }
    return Int8Outcome(compute_type=compute_type, measurements=measurements)


if __name__ == "__main__":  # `python -m inference.quantize MODEL_DIR COMPUTE_TYPE`: one speed row as JSON
    print(json.dumps(_speed_here(Path(sys.argv[1]), sys.argv[2])))
