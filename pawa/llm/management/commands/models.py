"""python manage.py models list | install NAME_OR_PATH... | remove NAME | show NAME | try NAME | adapt BASE"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inference.builtin import BUILTIN_MODELS
from inference.engine import Engine, SamplingParams
from inference.errors import ModelError
from inference.registry import QUANTIZATIONS
from pawa.llm.store import model_store

STEP_LABELS = {"sha256": "checking sha256", "convert": "converting layers",
               "calibrate": "calibrating int8 (texts)", "measure": "measuring int8 vs float32 (steps)"}


class TqdmProgress:
    """One progress bar per step of an install."""

    def __init__(self, name: str):
        self.name = name
        self.bar = None
        self.step = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self.step:
            self.close()
            self.step = step
            unit_scale = step == "sha256"
            self.bar = tqdm(
                total=total, desc=f"{self.name}: {STEP_LABELS.get(step, step)}",
                unit="B" if unit_scale else "layer", unit_scale=unit_scale, file=sys.stderr, leave=False,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def human_size(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size < 2**30 else f"{size / 2**30:.2f} GiB"


class Command(BaseCommand):
    help = "Manage the installed language models (offline)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="List installed models with their cards.")
        install = sub.add_parser("install", help="Install built-in models, GGUF files or HF checkpoint folders.")
        install.add_argument("sources", nargs="+", metavar="NAME_OR_PATH",
                             help=f"built-in: {', '.join(BUILTIN_MODELS)}; or a .gguf file; or a folder")
        install.add_argument("--name", help="name to install under (one source only)")
        install.add_argument("--quantization", choices=QUANTIZATIONS)
        install.add_argument("--force", action="store_true", help="reinstall even if present")
        install.add_argument("--no-measure", dest="measure", action="store_false",
                             help="skip the install-time int8 measurements (perplexity, agreement, speed)")
        remove = sub.add_parser("remove", help="Remove an installed model.")
        remove.add_argument("name")
        configure = sub.add_parser("configure", help="Change how a model runs on CPU (see its card's measurements).")
        configure.add_argument("name")
        configure.add_argument("--compute-type", choices=("int8", "int8_float32", "float32"))
        configure.add_argument("--threads", type=int, choices=range(1, 65), metavar="N")
        show = sub.add_parser("show", help="Print a model's card as JSON.")
        show.add_argument("name")
        adapt = sub.add_parser("adapt", help="Teach an installed model a domain from examples (LoRA), install the result.")
        adapt.add_argument("base", help="installed model to start from")
        adapt.add_argument("--data", required=True, help="examples: JSONL (messages, or prompt/completion) or CSV (question,answer)")
        adapt.add_argument("--name", required=True, help="name of the new model")
        held = adapt.add_mutually_exclusive_group()
        held.add_argument("--holdout", help="held-out questions (JSONL; \"expected\": the fact a right answer contains)")
        held.add_argument("--holdout-fraction", type=float, default=0.0, help="hold out this share of --data (0-0.5)")
        adapt.add_argument("--steps", type=int, help="training steps (batches of 8 examples)")
        adapt.add_argument("--rank", type=int, help="LoRA rank")
        adapt.add_argument("--lr", type=float, help="learning rate")
        adapt.add_argument("--threads", type=int, help="CPU threads for training (default 1)")
        adapt.add_argument("--no-retrieval", action="store_true",
                           help="train and serve without the nearest examples in each prompt")
        try_ = sub.add_parser("try", help="Stream an answer in the terminal through the model's chat template.")
        try_.add_argument("name")
        try_.add_argument("--prompt", required=True)
        try_.add_argument("--system", help="system prompt (default: the model card's)")
        try_.add_argument("--temperature", type=float, default=0.7)
        try_.add_argument("--max-tokens", type=int, default=256)
        try_.add_argument("--seed", type=int)
        try_.add_argument("--device", default="auto")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"do_{action}")(**options)
        except ModelError as exc:
            raise CommandError(str(exc)) from exc

    def do_list(self, **options):
        cards = model_store().list()
        if not cards:
            self.stdout.write("No models installed. Try: python manage.py models install " + " ".join(BUILTIN_MODELS))
            return
        header = f"{'NAME':24} {'KIND':9} {'LANGUAGES':14} {'PARAMS':>7} {'WEIGHTS':8} {'COMPUTE':8} {'DISK':>9} {'CONTEXT':>7}"
        self.stdout.write(header)
        for card in cards:
            self.stdout.write(
                f"{card.name:24} {card.kind:9} {','.join(card.languages)[:14]:14} "
                f"{card.parameters / 1e6:6.0f}M {card.quantization:8} {card.compute_type:8} "
                f"{human_size(card.size_on_disk_bytes):>9} {card.context_length:7d}"
            )
            self.stdout.write(f"    {card.display_name} · {card.license} · {card.summary('en')}")

    def do_install(self, *, sources, name, quantization, force, measure=True, **options):
        if name and len(sources) > 1:
            raise CommandError("--name works with one source only")
        store = model_store()
        for source in sources:
            progress = TqdmProgress(name or source)
            try:
                card, installed = store.install(source, name=name, quantization=quantization, force=force,
                                                progress=progress, measure=measure)
            finally:
                progress.close()
            if installed:
                self.stdout.write(self.style.SUCCESS(
                    f"Installed {card.name} ({card.quantization}, {human_size(card.size_on_disk_bytes)} on disk; "
                    f"float32 would be {human_size(card.size_fp32_bytes)})"
                ))
                decision = card.measurements.get("decision", {}).get("en")
                if decision:
                    self.stdout.write(f"    computes in {decision}")
            else:
                self.stdout.write(f"{card.name} is already installed")

    def do_remove(self, *, name, **options):
        model_store().remove(name)
        self.stdout.write(f"Removed {name}")

    def do_configure(self, *, name, compute_type, threads, **options):
        store = model_store()
        card = store.get(name)
        if compute_type:
            card.compute_type = compute_type
        if threads:
            card.threads = threads
        card.save(store.path(name))
        self.stdout.write(f"{name}: compute type {card.compute_type}, {card.threads} thread(s) per generation")

    def do_show(self, *, name, **options):
        self.stdout.write(json.dumps(model_store().get(name).as_dict(), indent=2, ensure_ascii=False))

    def do_adapt(self, *, base, data, name, holdout, holdout_fraction, steps, rank, lr, threads, no_retrieval=False,
                 **options):
        from inference.adapt import AdaptResult, AdaptSettings, DataError, adapt, loss_summary

        if not 0.0 <= holdout_fraction <= 0.5:
            raise CommandError("--holdout-fraction must be between 0 and 0.5")
        store = model_store()
        card = store.get(base) if store.is_installed(base) else None
        settings = AdaptSettings.for_base(card, steps=steps or None, rank=rank or None, learning_rate=lr or None,
                                          threads=threads or None, retrieval_k=0 if no_retrieval else None)
        bar = None

        def progress(state) -> None:
            nonlocal bar
            if state.phase != "train":
                self.stderr.write(f"{state.phase} ({state.elapsed:.0f} s)")
                return
            if bar is None:
                bar = tqdm(total=state.steps, desc=f"{name}: training", unit="step", file=sys.stderr)
            bar.set_postfix(loss=f"{state.loss:.3f}")
            bar.update(state.step - bar.n)
            if state.step >= state.steps:
                bar.close()

        try:
            result = adapt(model_store(), base=base, data=data, name=name, holdout=holdout,
                           holdout_fraction=holdout_fraction, settings=settings, progress=progress)
        except DataError as exc:
            raise CommandError(f"{exc.file or data}: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        before, after = AdaptResult.accuracy(result.before), AdaptResult.accuracy(result.after)
        for old, new in zip(result.before, result.after):
            self.stdout.write(f"{old.question}\n    before {'✓' if old.right else '✗'} {old.answer!r}\n"
                              f"    after  {'✓' if new.right else '✗'} {new.answer!r}")
        accuracy = ""
        if before is not None:
            accuracy = f"; held-out exact-fact accuracy {before:.0%} → {after:.0%}"
        self.stdout.write(self.style.SUCCESS(
            f"Installed {name} (adapted from {base}): trained {result.train_seconds:.0f} s, "
            f"{loss_summary(result.losses)}{accuracy}"
        ))

    def do_try(self, *, name, prompt, system, temperature, max_tokens, seed, device, **options):
        store = model_store()
        store.get(name)
        engine = Engine.load(store.path(name), device=device)
        params = SamplingParams(
            temperature=temperature, max_tokens=max_tokens, seed=seed
        )
        messages = [{"role": "user", "content": prompt}]
        built = engine.chat_prompt(messages, system=system or engine.card.default_system_prompt, max_tokens=max_tokens)
        generation = engine.generate(built, params)
        try:
            for delta in generation:
                self.stdout.write(delta, ending="")
                self.stdout.flush()
        except KeyboardInterrupt:
            generation.close()
        r = generation.result
        self.stdout.write("")
        self.stderr.write(
            f"[{r.finish_reason}] {r.prompt_tokens} prompt + {r.completion_tokens} completion tokens, "
            f"TTFT {1000 * (r.time_to_first_token or 0):.0f} ms, {r.tokens_per_second:.1f} tok/s "
            f"({engine.device}, {engine.compute_type}, {engine.intra_threads} thread(s))"
        )
        engine.close()
