"""Speed, memory and quantization quality of installed models. Prints numbers; asserts nothing.

    python benchmarks/models.py [--models-dir var/models] [--models NAME ...] [--threads 1 2]
                                [--quality] [--tokens 128]

Speed: time to first token and decode tokens/s through the engine (greedy, chat template),
per thread count. Memory: resident memory added by loading the model.
Quality (--quality): converts the model's source GGUF again to float32 as the reference and
reports, for each compute type, perplexity on held-out Swahili and English text
(CTranslate2 `score_batch`) and greedy top-1 agreement of the first 16 new tokens on a set of
prompts.
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402

from inference.engine import Engine, SamplingParams  # noqa: E402
from inference.registry import ModelStore  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "inference" / "texts"


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def speed(model_dir: Path, threads: int, compute_type: str | None, tokens: int) -> dict:
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    engine = Engine(model_dir, device="cpu", compute_type=compute_type, intra_threads=threads)
    load = time.perf_counter() - started
    added = rss_mb() - before
    prompts = (DATA / "prompts.txt").read_text().splitlines()
    params = SamplingParams(temperature=0, max_tokens=tokens, repetition_penalty=1.0)
    # Warm up once (first call allocates buffers), then measure.
    list(engine.generate(engine.chat_prompt([{"role": "user", "content": prompts[0]}]), params))
    ttfts, rates, counts = [], [], []
    for prompt in prompts[:4]:
        generation = engine.generate(engine.chat_prompt([{"role": "user", "content": prompt}]), params)
        for _ in generation:
            pass
        ttfts.append(generation.result.time_to_first_token)
        rates.append(generation.result.tokens_per_second)
        counts.append(generation.result.completion_tokens)
    engine.close()
    del engine
    return {
        "load_s": load, "rss_mb": added, "ttft_ms": 1000 * sum(ttfts) / len(ttfts),
        "tok_s": sum(rates) / len(rates), "tokens": sum(counts) / len(counts),
    }


def perplexity(generator, tokenizer, text: str, bos: str) -> float:
    total, count = 0.0, 0
    for paragraph in [p for p in text.split("\n") if p.strip()]:
        tokens = tokenizer.encode(paragraph, add_special_tokens=False).tokens
        if bos:
            tokens = [bos, *tokens]
        # One sequence per call: batched scoring fails on some models.
        scores = generator.score_batch([tokens])[0].log_probs
        total += sum(scores)
        count += len(scores)
    return math.exp(-total / count)


def greedy(generator, engine: Engine, prompt: str, n: int = 16) -> list[int]:
    tokens = engine.chat_prompt([{"role": "user", "content": prompt}]).tokens
    result = generator.generate_batch(
        [tokens], max_length=n, sampling_topk=1, include_prompt_in_result=False, end_token=engine.end_tokens
    )
    return result[0].sequences_ids[0]


def quality(store: ModelStore, name: str, compute_types: list[str]) -> None:
    from inference.gguf_convert import convert_gguf
    from inference import builtin

    card = store.get(name)
    model_dir = store.path(name)
    source = builtin.BUILTIN_MODELS.get(name)
    gguf_path = (
        source.gguf_path(store.root / ".cache", None) if source else Path(card.source.get("file", ""))
    )
    if not gguf_path.is_file():
        print(f"  {name}: source GGUF not available, skipping quality")
        return
    engine = Engine(model_dir, device="cpu", intra_threads=2)
    sw = (DATA / "heldout_sw.txt").read_text()
    en = (DATA / "heldout_en.txt").read_text()
    prompts = (DATA / "prompts.txt").read_text().splitlines()
    bos = card.bos_token if card.add_bos else ""
    with tempfile.TemporaryDirectory() as tmp:
        reference_dir = Path(tmp)
        convert_gguf(gguf_path, reference_dir, "float32")
        configurations = [("float32 weights, float32 compute", reference_dir, "float32")]
        configurations += [(f"{card.quantization} weights, {ct} compute", model_dir, ct) for ct in compute_types]
        reference_answers = None
        reference_ppl = None
        print(f"  {'configuration':40} {'ppl sw':>8} {'ppl en':>8} {'Δsw':>7} {'Δen':>7} {'top-1 agree':>12}")
        for label, directory, compute_type in configurations:
            generator = ctranslate2.Generator(str(directory), device="cpu", compute_type=compute_type, intra_threads=2)
            ppl = (perplexity(generator, engine.tokenizer, sw, bos), perplexity(generator, engine.tokenizer, en, bos))
            answers = [greedy(generator, engine, p) for p in prompts]
            if reference_answers is None:
                reference_answers, reference_ppl = answers, ppl
            full = sum(a == b for a, b in zip(answers, reference_answers))
            agree = sum(
                next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                for a, b in zip(answers, reference_answers)
            )
            possible = sum(min(len(a), len(b)) for a, b in zip(answers, reference_answers))
            print(
                f"  {label:40} {ppl[0]:8.1f} {ppl[1]:8.1f} {100 * (ppl[0] / reference_ppl[0] - 1):+6.1f}% "
                f"{100 * (ppl[1] / reference_ppl[1] - 1):+6.1f}% {full}/{len(prompts)} prompts, "
                f"{agree}/{possible} tokens"
            )
            del generator
            gc.collect()
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--compute-types", nargs="*", default=["int8", "float32"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--quality", action="store_true")
    args = parser.parse_args()
    store = ModelStore(args.models_dir)
    names = args.models or [card.name for card in store.list()]
    print(f"CTranslate2 {ctranslate2.__version__}, CPU compute types: {sorted(ctranslate2.get_supported_compute_types('cpu'))}")
    for name in names:
        card = store.get(name)
        print(f"\n{name}: {card.parameters / 1e6:.0f}M parameters, {card.quantization} on disk "
              f"({card.size_on_disk_bytes / 2**20:.0f} MiB; float32 would be {card.size_fp32_bytes / 2**20:.0f} MiB)")
        print(f"  {'compute':10} {'threads':>7} {'load s':>7} {'+RSS MiB':>9} {'TTFT ms':>8} {'tok/s':>7} {'tokens':>7}")
        for compute_type in args.compute_types:
            for threads in args.threads:
                r = speed(store.path(name), threads, compute_type, args.tokens)
                print(f"  {compute_type:10} {threads:7d} {r['load_s']:7.2f} {r['rss_mb']:9.0f} "
                      f"{r['ttft_ms']:8.0f} {r['tok_s']:7.1f} {r['tokens']:7.0f}")
        if args.quality:
            quality(store, name, args.compute_types)


if __name__ == "__main__":
    main()
