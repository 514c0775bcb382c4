"""Each built-in model on a CUDA GPU: greedy output against the CPU's, and tok/s. Prints numbers.

    python benchmarks/gpu_check.py [--models-dir var/models] [--tokens 16] [--streams 8]

For every installed model: loads it on the CPU with its card's compute type and on the GPU with
the compute type PAWA uses there (`inference.engine.default_compute_type`: `int8_bfloat16` for
Gemma-family models, whose activations overflow float16 — CTranslate2 issue #1956 — and
`int8_float16` for the others), compares the first --tokens greedy tokens of each prompt
(`inference/texts/prompts.txt`), and prints decode tok/s at batch 1 and batch --streams. Exits 0
with a message where no CUDA device exists; exits 1 if any model's GPU output is empty or
contains NaN-like garbage (no token agrees at all on any prompt).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402

from inference.card import ModelCard  # noqa: E402
from inference.engine import default_compute_type  # noqa: E402
from inference.quantize import Texts  # noqa: E402
from inference.registry import ModelStore  # noqa: E402


def greedy(generator, prompts: list[list[str]], tokens: int) -> list[list[int]]:
    results = generator.generate_batch(prompts, max_length=tokens, sampling_topk=1, include_prompt_in_result=False)
    return [r.sequences_ids[0] for r in results]


def rate(generator, prompt: list[str], batch: int, tokens: int) -> float:
    generator.generate_batch([prompt] * batch, max_length=4, sampling_topk=1)  # warm-up
    started = time.perf_counter()
    results = generator.generate_batch([prompt] * batch, max_length=tokens, sampling_topk=1,
                                       include_prompt_in_result=False)
    elapsed = time.perf_counter() - started
    return sum(len(r.sequences_ids[0]) for r in results) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--speed-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    args = parser.parse_args()
    if ctranslate2.get_cuda_device_count() == 0:
        print("No CUDA device: nothing to check (CTranslate2 sees 0 GPUs).")
        return 0
    from tokenizers import Tokenizer

    print(f"CTranslate2 {ctranslate2.__version__}, {ctranslate2.get_cuda_device_count()} CUDA device(s), "
          f"compute types: {sorted(ctranslate2.get_supported_compute_types('cuda'))}")
    store = ModelStore(args.models_dir)
    prompts_text = [p for p in (ROOT / "inference" / "texts" / "prompts.txt").read_text().splitlines() if p.strip()]
    failed = False
    for card in store.list():
        model_dir = store.path(card.name)
        card = ModelCard.load(model_dir)
        texts = Texts(Tokenizer.from_file(str(model_dir / "tokenizer.json")), card.bos_token if card.add_bos else "")
        prompts = [texts.tokens(p) for p in prompts_text]
        cpu = ctranslate2.Generator(str(model_dir), device="cpu", compute_type=card.compute_type)
        cpu_answers = greedy(cpu, prompts, args.tokens)
        del cpu
        gpu_type = default_compute_type("cuda", card)
        gpu = ctranslate2.Generator(str(model_dir), device="cuda", compute_type=gpu_type)
        gpu_answers = greedy(gpu, prompts, args.tokens)
        same = sum(a == b for a, b in zip(gpu_answers, cpu_answers))
        prefix = sum(
            next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            for a, b in zip(gpu_answers, cpu_answers)
        )
        possible = sum(min(len(a), len(b)) for a, b in zip(gpu_answers, cpu_answers))
        rate_1 = rate(gpu, prompts[0], 1, args.speed_tokens)
        rate_n = rate(gpu, prompts[0], args.streams, args.speed_tokens)
        del gpu
        print(f"{card.name}: GPU {gpu_type} vs CPU {card.compute_type}: {same}/{len(prompts)} prompts identical, "
              f"{prefix}/{possible} tokens agree before the first difference; "
              f"tok/s batch 1 {rate_1:.0f}, batch {args.streams} {rate_n:.0f}")
        if prefix == 0 or not any(gpu_answers):
            failed = True
            print(f"  {card.name}: the GPU output does not agree at all with the CPU's")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
