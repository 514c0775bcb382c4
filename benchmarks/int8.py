"""SmoothQuant α sweep for the built-in models: perplexity of int8 vs float32. Prints numbers.

    python benchmarks/int8.py [--models gemma3-270m ...] [--alphas 0.4 0.5 0.7] [--output-projection]

For each model: converts its source GGUF to float32 (the reference; loaded with compute type
int8 it is also "plain int8", quantized at load time), calibrates once, then for each α (and, with
--output-projection, with the vocabulary projection smoothed too) converts a smoothed int8 model
and prints perplexity on the held-out Swahili and English text relative to float32. This is how
each built-in model's α in inference/builtin.py was chosen.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402

from inference import builtin, smoothing  # noqa: E402
from inference.gguf_convert import build_spec, read_gguf  # noqa: E402
from inference.gguf_tokenizer import build_tokenizer  # noqa: E402
from inference.quantize import Texts, perplexity  # noqa: E402
from inference.registry import ModelStore  # noqa: E402


def measure(directory: Path, compute_type: str, texts: Texts) -> tuple[float, float]:
    generator = ctranslate2.Generator(str(directory), device="cpu", compute_type=compute_type, intra_threads=2)
    try:
        return perplexity(generator, texts, "sw"), perplexity(generator, texts, "en")
    finally:
        del generator
        gc.collect()


def save(spec, directory: Path, quantization: str) -> None:
    directory.mkdir()
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--models", nargs="*", default=list(builtin.BUILTIN_MODELS))
    parser.add_argument("--alphas", nargs="*", type=float, default=[0.4, 0.5, 0.6, 0.7, 0.85])
    parser.add_argument("--output-projection", action="store_true")
    args = parser.parse_args()
    store = ModelStore(args.models_dir)
    for name in args.models:
        source = builtin.BUILTIN_MODELS[name]
        path = source.gguf_path(store.root / ".cache", None)
        model = read_gguf(path)
        add_bos = bool(model.metadata.get("tokenizer.ggml.add_bos_token", False))
        tokens = model.metadata["tokenizer.ggml.tokens"]
        bos = tokens[int(model.metadata["tokenizer.ggml.bos_token_id"])] if add_bos else ""
        texts = Texts(build_tokenizer(model.metadata), bos)
        spec = build_spec(model)
        stats = smoothing.calibrate(spec, texts.calibration())
        work = Path(tempfile.mkdtemp(prefix="int8-sweep-"))
        try:
            save(spec, work / "float32", "float32")
            del spec
            reference = measure(work / "float32", "float32", texts)
            plain = measure(work / "float32", "int8", texts)
            print(f"\n{name}: {stats.tokens} calibration tokens")
            print(f"  {'variant':34} {'ppl sw':>8} {'Δ sw':>7} {'ppl en':>8} {'Δ en':>7}")

            def line(label, values):
                print(f"  {label:34} {values[0]:8.2f} {100 * (values[0] / reference[0] - 1):+6.1f}% "
                      f"{values[1]:8.2f} {100 * (values[1] / reference[1] - 1):+6.1f}%", flush=True)

            line("float32", reference)
            line("plain int8", plain)
            for head in ([False, True] if args.output_projection else [False]):
                for alpha in args.alphas:
                    spec = build_spec(model)
                    smoothing.smooth(spec, stats, alpha, output_projection=head)
                    directory = work / f"a{alpha}-{int(head)}"
                    save(spec, directory, "int8")
                    del spec
                    line(f"smoothed int8 α={alpha}{' + projection' if head else ''}",
                         measure(directory, "int8", texts))
                    shutil.rmtree(directory)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
