"""Check the GGUF → CTranslate2 conversion against an independent implementation.

transformers (with torch) loads the same GGUF file, dequantizes it and runs its own model code
and tokenizer. For each prompt we compare the first 16 greedy tokens of transformers with the
CTranslate2 conversion (float32, plain int8 and the installed smoothed int8), and the next-token
distribution of a long prompt. Development only: needs `pip install -r requirements-convert.txt`.

    python benchmarks/conversion_check.py [--models-dir var/models] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402

from inference import builtin  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.gguf_convert import convert_gguf  # noqa: E402
from inference.registry import ModelStore  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "inference" / "texts"
NEW_TOKENS = 16


def first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--models", nargs="*", default=list(builtin.BUILTIN_MODELS))
    args = parser.parse_args()
    store = ModelStore(args.models_dir)
    torch.set_num_threads(2)
    prompts = (DATA / "prompts.txt").read_text().splitlines()
    long_text = " ".join([(DATA / "heldout_sw.txt").read_text()] * 3)
    for name in args.models:
        source = builtin.BUILTIN_MODELS[name]
        gguf_path = source.gguf_path(store.root / ".cache", None)
        engine = Engine(store.path(name), device="cpu", intra_threads=2)
        reference = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, torch_dtype=torch.float32
        ).eval()
        hf_tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        with tempfile.TemporaryDirectory() as tmp:
            convert_gguf(gguf_path, Path(tmp), "float32")
            installed = str(store.path(name))
            generators = {
                "float32": ctranslate2.Generator(tmp, compute_type="float32", intra_threads=2),
                # The float32 conversion quantized at load time: int8 without smoothing.
                "plain int8": ctranslate2.Generator(tmp, compute_type="int8", intra_threads=2),
                # The installed model: SmoothQuant-smoothed int8 weights, int8 computation.
                "smoothed int8 (installed)": ctranslate2.Generator(installed, compute_type="int8", intra_threads=2),
            }
            print(f"\n{name} ({gguf_path.name}) vs transformers {__import__('transformers').__version__}")
            same_tokens = 0
            agreement = {key: [0, 0, 0] for key in generators}  # full prompts, agreeing tokens, total
            for prompt in prompts:
                tokens = engine.chat_prompt([{"role": "user", "content": prompt}]).tokens
                ids = [engine.tokenizer.token_to_id(t) for t in tokens]
                hf_ids = hf_tokenizer(engine.tokenizer.decode(ids, skip_special_tokens=False),
                                      add_special_tokens=False)["input_ids"]
                same_tokens += hf_ids == ids
                with torch.no_grad():
                    out = reference.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False)
                expected = out[0, len(ids):].tolist()
                for key, generator in generators.items():
                    got = generator.generate_batch(
                        [tokens], max_length=NEW_TOKENS, sampling_topk=1, include_prompt_in_result=False,
                        end_token=[],
                    )[0].sequences_ids[0]
                    n = min(len(got), len(expected))
                    match = first_difference(got, expected)
                    agreement[key][0] += match >= n
                    agreement[key][1] += match
                    agreement[key][2] += n
            print(f"  tokenizer: identical ids on {same_tokens}/{len(prompts)} rendered prompts")
            for key, (full, agree, total) in agreement.items():
                print(f"  CTranslate2 {key:26}: first {NEW_TOKENS} greedy tokens identical on {full}/{len(prompts)} "
                      f"prompts; {agree}/{total} tokens before the first divergence")
            # A prompt longer than Gemma 3's 512-token sliding window.
            tokens = engine._with_bos(engine.tokenize(long_text))[:700]
            ids = [engine.tokenizer.token_to_id(t) for t in tokens]
            with torch.no_grad():
                logits = reference(torch.tensor([ids])).logits[0, -1].numpy()
            for key, generator in generators.items():
                result = generator.generate_batch(
                    [tokens], max_length=1, sampling_topk=1, include_prompt_in_result=False,
                    return_logits_vocab=True, end_token=[],
                )[0]
                ct2_logits = np.array(result.logits[0][0]) if result.logits else None
                top_ref = int(np.argmax(logits))
                top_ct2 = result.sequences_ids[0][0] if result.sequences_ids[0] else -1
                detail = ""
                if ct2_logits is not None and ct2_logits.shape == logits.shape:
                    detail = f", max |Δlogit| {np.abs(ct2_logits - logits).max():.3f}"
                print(f"  long prompt ({len(ids)} tokens), {key:26}: next token "
                      f"{'agrees' if top_ref == top_ct2 else 'differs'}{detail}")
        del reference, generators
        engine.close()


if __name__ == "__main__":
    main()
