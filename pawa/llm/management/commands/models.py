"""python manage.py models list | install NAME_OR_PATH... | remove NAME | show NAME | try NAME"""

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
