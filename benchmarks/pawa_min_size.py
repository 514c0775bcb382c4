"""PAWA-Min at its real size: memory, load time, TTFT and tok/s, int8 vs float32. Prints numbers.

    python benchmarks/pawa_min_size.py [--work DIR] [--tokens 64] [--streams 8] [--keep]

sartifyllc/pawa-min-alpha (a Gemma 2 fine-tune, ~2.6B parameters) cannot be downloaded here, but its
size and architecture can be built: this writes a Gemma 2 checkpoint with pawa-min-alpha's
configuration (hidden 2304, 26 layers, 8 heads / 4 key-value heads of 256, feed-forward 9216,
logit soft-capping, sliding window 4096) and random weights, in bfloat16 safetensors like the
published checkpoint, then installs it through the same Hugging Face conversion path as a real
checkpoint (`ModelStore.install`: SmoothQuant calibration, int8 weights) into a private models
folder under --work (never the platform's `var/models`, so it never appears as a chat model).
Then, for each compute type: resident memory added by loading, load time, time to first token of a
~100-token prompt, decode tok/s for one stream and aggregate tok/s for --streams streams in one batch.

Random weights say nothing about quality; the perplexity rows of a real checkpoint come from its
install-time measurements (inference/quantize.py). Needs the convert extra (torch, transformers):
pip install -r requirements-convert.txt.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# sartifyllc/pawa-min-alpha's config.json (Gemma 2 2B geometry).
PAWA_MIN_CONFIG = dict(
    hidden_size=2304, num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
    intermediate_size=9216, max_position_embeddings=8192, sliding_window=4096, query_pre_attn_scalar=256,
    attn_logit_softcapping=50.0, final_logit_softcapping=30.0, hidden_activation="gelu_pytorch_tanh",
    rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
)


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_checkpoint(folder: Path, tokenizer_file: Path) -> int:
    """Write the random-weight checkpoint; returns its parameter count."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), bos_token="<bos>", eos_token="<eos>",
                                        unk_token="<unk>", pad_token="<pad>")
    config = Gemma2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **PAWA_MIN_CONFIG)
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Gemma2ForCausalLM(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.normal_(0.0, 0.1)  # Gemma stores gamma − 1
            else:
                parameter.normal_(0.0, 0.02)
    model.tie_weights()  # the output projection is the embedding matrix, as in Gemma 2
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    del model
    gc.collect()
    return parameters


def speed(model_dir: Path, compute_type: str, tokens: int, streams: int, threads: int) -> dict:
    import ctranslate2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    text = (ROOT / "inference" / "texts" / "heldout_sw.txt").read_text().split("\n")[0]
    prompt = ["<bos>", *tokenizer.encode(text, add_special_tokens=False).tokens][:100]
    gc.collect()
    before = rss_mib()
    started = time.perf_counter()
    generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type=compute_type, intra_threads=threads)
    load_s = time.perf_counter() - started
    loaded = rss_mib() - before
    generator.generate_batch([prompt], max_length=2, sampling_topk=1)  # warm-up
    first = []
    started = time.perf_counter()
    for step in generator.generate_tokens(prompt, max_length=tokens, sampling_topk=1):
        first.append(time.perf_counter())
    ttft = first[0] - started
    decode_tok_s = (len(first) - 1) / (first[-1] - first[0]) if len(first) > 1 else 0.0
    started = time.perf_counter()
    results = generator.generate_batch([prompt] * streams, max_length=tokens, sampling_topk=1,
                                       include_prompt_in_result=False)
    elapsed = time.perf_counter() - started
    generated = sum(len(r.sequences_ids[0]) for r in results)
    serving = rss_mib() - before
    del generator
    gc.collect()
    return {"compute_type": compute_type, "threads": threads, "load_s": round(load_s, 1),
            "rss_loaded_mib": round(loaded), "rss_serving_mib": round(serving), "ttft_s": round(ttft, 2),
            "tok_s_1": round(decode_tok_s, 1), f"tok_s_{streams}": round(generated / elapsed, 1),
            "streams": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "var" / "bench-pawa-min"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compute-types", nargs="*", default=["int8", "float32"])
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and the converted model")
    args = parser.parse_args()

    from inference.registry import ModelStore

    work = Path(args.work)
    checkpoint = work / "pawa-min-size"
    store = ModelStore(work / "models")
    tokenizer_file = ROOT / "var" / "models" / "gemma3-270m" / "tokenizer.json"
    if not tokenizer_file.is_file():
        sys.exit("Install gemma3-270m first (its tokenizer stands in for pawa-min-alpha's): make setup")
    results: dict = {"config": PAWA_MIN_CONFIG}
    if not (checkpoint / "config.json").is_file():
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        results["parameters"] = build_checkpoint(checkpoint, tokenizer_file)
        print(f"checkpoint: {results['parameters'] / 1e9:.2f}B parameters, written in {time.perf_counter() - started:.0f} s",
              flush=True)
    if not store.is_installed("pawa-min-size"):
        started = time.perf_counter()
        card, _ = store.install(str(checkpoint), name="pawa-min-size", measure=False)
        results["install_s"] = round(time.perf_counter() - started)
        results["install_peak_rss_mib"] = round(peak_rss_mib())
        print(f"install (SmoothQuant int8): {results['install_s']} s, peak RSS {results['install_peak_rss_mib']} MiB, "
              f"{card.size_on_disk_bytes / 2**30:.2f} GiB on disk", flush=True)
    card = store.get("pawa-min-size")
    results["parameters"] = card.parameters
    results["size_on_disk_gib"] = round(card.size_on_disk_bytes / 2**30, 2)
    results["speed"] = []
    print(f"{'compute':8} {'threads':>7} {'load s':>7} {'RSS MiB':>8} {'serving':>8} {'TTFT s':>7} {'tok/s 1':>8} "
          f"{'tok/s ' + str(args.streams):>9}")
    for compute_type in args.compute_types:
        row = speed(store.path("pawa-min-size"), compute_type, args.tokens, args.streams, args.threads)
        results["speed"].append(row)
        print(f"{compute_type:8} {row['threads']:7d} {row['load_s']:7.1f} {row['rss_loaded_mib']:8d} "
              f"{row['rss_serving_mib']:8d} {row['ttft_s']:7.2f} {row['tok_s_1']:8.1f} "
              f"{row[f'tok_s_{args.streams}']:9.1f}", flush=True)
    out = ROOT / "benchmarks" / "results" / "pawa_min_size.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
