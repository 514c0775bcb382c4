"""Adapting the built-in models to a domain: held-out accuracy, general Swahili, training time.

    python benchmarks/adapt.py [--models-dir var/models] [--models NAME ...]
                               [--steps N] [--rank R] [--lr X] [--batch-size B] [--threads T]
                               [--k N] [--variants N] [--neftune A] [--self-share P]
                               [--data FILE] [--holdout FILE] [--also FILE ...] [--ablations] [--show]

The README's numbers: --holdout tests/data/clinic_sw_dev.jsonl (12 rephrased questions used to
choose the settings) --also tests/data/clinic_sw_heldout.jsonl (the 10 held-out ones).

For each model: LoRA training on tests/data/clinic_sw.jsonl (40 Swahili questions and answers
about a fictional clinic) with inference/adapt.py, exactly as `manage.py models adapt` does it,
into a temporary store beside the installed models (nothing is installed in --models-dir).
Then it prints
- held-out exact-fact accuracy before and after (tests/data/clinic_sw_heldout.jsonl: 10
  paraphrased questions, each with the fact a right answer contains),
- general Swahili accuracy before and after on benchmarks/swahili_qa.py's questions
  (tests/data/swahili_qa.json), to see that the adaptation does not make other answers worse,
- the training time (the LoRA steps; loading and converting are reported apart),
- with --ablations, the adapted model without its retrieved examples and the base model with
  them (inference/retrieval.py), to tell what training and retrieval each bring.
Needs the optional extra: pip install -r requirements-convert.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from swahili_qa import evaluate as swahili_evaluate  # noqa: E402
from swahili_qa import load_questions  # noqa: E402

from inference import builtin  # noqa: E402
from inference.adapt import AdaptResult, AdaptSettings, adapt, evaluate, load_examples  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.registry import ModelStore  # noqa: E402
from inference.retrieval import ExampleIndex, Pair  # noqa: E402

DATA = ROOT / "tests" / "data"


def swahili_accuracy(store: ModelStore, name: str) -> tuple[int, int]:
    engine = Engine(store.path(name), device="cpu")
    try:
        results = swahili_evaluate(engine, load_questions())
    finally:
        engine.close()
    return sum(ok for _q, _a, ok in results), len(results)


def answers(store: ModelStore, name: str, path: str, *, examples: str | None = None, k: int | None = None):
    """Held-out rows of model `name`; `k` overrides how many examples it retrieves (0: none) and
    `examples` gives a base model the training examples to retrieve from."""
    engine = Engine(store.path(name), device="cpu")
    try:
        if examples is not None:
            engine.examples = ExampleIndex([Pair(e.question, e.answer) for e in load_examples(examples)])
        if k is not None:
            engine.retrieval_k = k
        return evaluate(engine, load_examples(path, heldout=True))
    finally:
        engine.close()


def main() -> None:
    defaults = AdaptSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--models", nargs="*", default=list(builtin.BUILTIN_MODELS))
    parser.add_argument("--data", default=str(DATA / "clinic_sw.jsonl"))
    parser.add_argument("--holdout", default=str(DATA / "clinic_sw_heldout.jsonl"))
    parser.add_argument("--steps", type=int, help="default: the base model's measured number")
    parser.add_argument("--rank", type=int, default=defaults.rank)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed (order, adapters, noise)")
    parser.add_argument("--variants", type=int, default=defaults.question_variants,
                        help="word-dropout copies of each question")
    parser.add_argument("--dropout", type=float, default=defaults.word_dropout)
    parser.add_argument("--neftune", type=float, default=defaults.neftune_alpha)
    parser.add_argument("--k", type=int, default=defaults.retrieval_k, help="examples retrieved into each prompt")
    parser.add_argument("--self-share", type=float, default=defaults.retrieval_self,
                        help="share of training examples that see themselves among the retrieved ones")
    parser.add_argument("--also", nargs="*", default=[],
                        help="more held-out files the adapted model answers (e.g. a development set)")
    parser.add_argument("--ablations", action="store_true",
                        help="also the adapted model without retrieval and the base model with it")
    parser.add_argument("--no-swahili", action="store_true", help="skip the general Swahili questions")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--show", action="store_true", help="print every held-out answer")
    args = parser.parse_args()

    installed = ModelStore(args.models_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="adapt-bench-") as tmp:
        store = ModelStore(tmp)
        (store.root / ".cache").mkdir()
        for cached in (installed.root / ".cache").glob("*.gguf"):
            (store.root / ".cache" / cached.name).symlink_to(cached)
        for base in args.models:
            settings = AdaptSettings.for_base(
                installed.get(base), steps=args.steps, rank=args.rank, learning_rate=args.lr,
                batch_size=args.batch_size, threads=args.threads, question_variants=args.variants,
                word_dropout=args.dropout, neftune_alpha=args.neftune, retrieval_k=args.k,
                retrieval_self=args.self_share, seed=args.seed)
            print(f"{base} settings: {settings.as_dict()}")
            (store.root / base).symlink_to(installed.path(base))
            name = f"{base}-clinic"
            phases: dict[str, float] = {}

            def progress(state, phases=phases) -> None:
                phases.setdefault(state.phase, state.elapsed)
                if state.phase == "train" and (state.step % 10 == 0 or state.step == state.steps):
                    print(f"  {base}: step {state.step}/{state.steps} loss {state.loss:.3f} "
                          f"elapsed {state.elapsed:.0f} s, about {state.eta:.0f} s left", flush=True)

            started = time.monotonic()
            result = adapt(store, base=base, data=args.data, holdout=args.holdout, name=name, settings=settings,
                           progress=progress)
            total = time.monotonic() - started
            before, after = AdaptResult.accuracy(result.before), AdaptResult.accuracy(result.after)
            row = {"model": base, "settings": settings.as_dict(), "heldout_before": before, "heldout_after": after,
                   "train_seconds": round(result.train_seconds, 1), "total_seconds": round(total, 1),
                   "loss_first": round(result.losses[0], 3), "loss_last": round(result.losses[-1], 3)}
            for extra in [args.holdout, *args.also]:
                runs = {"adapted": {}} if extra != args.holdout else {}
                if args.ablations and settings.retrieval_k:
                    runs["adapted, no retrieval"] = {"k": 0}
                    runs["base + retrieval"] = {"examples": args.data, "k": settings.retrieval_k, "base": True}
                for label, options in runs.items():
                    model = base if options.pop("base", False) else name
                    found = answers(store, model, extra, **options)
                    row[f"{label}:{Path(extra).name}"] = AdaptResult.accuracy(found)
                    print(f"  {base}: {Path(extra).name} {label} {AdaptResult.accuracy(found):.0%}", flush=True)
                    if args.show:
                        for new in found:
                            print(f"    {'✓' if new.right else '✗'} {new.question} [{new.expected}] {new.answer!r}")
            if not args.no_swahili:
                row["swahili_before"] = swahili_accuracy(store, base)
                row["swahili_after"] = swahili_accuracy(store, name)
            rows.append(row)
            print(f"{base}: held-out exact-fact accuracy {before:.0%} → {after:.0%}; "
                  f"training {result.train_seconds:.0f} s ({settings.steps} steps), whole run {total:.0f} s; "
                  f"loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}"
                  + (f"; general Swahili {row['swahili_before'][0]}/{row['swahili_before'][1]} → "
                     f"{row['swahili_after'][0]}/{row['swahili_after'][1]}" if not args.no_swahili else ""),
                  flush=True)
            if args.show:
                for old, new in zip(result.before, result.after, strict=True):
                    print(f"  {old.question} [{old.expected}]\n    before {'✓' if old.right else '✗'} {old.answer!r}"
                          f"\n    after  {'✓' if new.right else '✗'} {new.answer!r}")
            store.remove(name)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": rows}, indent=2))


if __name__ == "__main__":
    main()
