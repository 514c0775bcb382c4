"""Installed models: list, install (offline), show, remove.

Each model lives in `<root>/<name>/` with the CTranslate2 files, `tokenizer.json` and
`card.json`. An install is built in a hidden temporary folder and renamed into place at the
end, so an interrupted install never shows up as a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inference import builtin
from inference.card import CARD_FILE, CONVERSION, ModelCard
from inference.errors import ModelError

# Card fields that frame a built-in model's prompts (not its weights): refreshed on install.
FRAMING_FIELDS = ("chat_template", "stop", "default_system_prompt", "description", "display_name", "kind")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
QUANTIZATIONS = ("int8", "int8_float32", "float32")

Progress = Callable[[str, int, int], None]


class ModelNotFound(ModelError):
    pass


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
            done += len(block)
            if progress:
                progress("sha256", done, total)
    return digest.hexdigest()


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug[:64] or "model"


class ModelStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def list(self) -> list[ModelCard]:
        if not self.root.is_dir():
            return []
        cards = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not (entry / CARD_FILE).is_file():
                continue
            try:
                cards.append(ModelCard.load(entry))
            except ModelError:
                continue
        return cards

    def get(self, name: str) -> ModelCard:
        if not NAME_RE.match(name or "") or not (self.path(name) / CARD_FILE).is_file():
            raise ModelNotFound(f"Model {name!r} is not installed")
        return ModelCard.load(self.path(name))

    def is_installed(self, name: str) -> bool:
        try:
            self.get(name)
        except ModelNotFound:
            return False
        return True

    def _refresh_framing(self, card: ModelCard, source: builtin.BuiltinModel) -> ModelCard:
        """Bring an installed built-in card's prompt framing up to date, without converting again.

        A newer PAWA may change a built-in model's template, stop strings or texts; `models
        install` (which every `make run` calls) then updates the installed card in place.
        """
        changed = {key: source.card[key] for key in FRAMING_FIELDS
                   if key in source.card and getattr(card, key) != source.card[key]}
        if source.reference_check and card.measurements.get("reference_check") != source.reference_check:
            changed["measurements"] = {**card.measurements, "reference_check": source.reference_check}
        if changed:
            for key, value in changed.items():
                setattr(card, key, value)
            folder = self.path(card.name)
            staged = folder / f".{CARD_FILE}.tmp"
            staged.write_text(json.dumps(card.as_dict(), indent=2, ensure_ascii=False))
            staged.replace(folder / CARD_FILE)  # one rename: a worker starting now reads a whole card
        return card

    def remove(self, name: str) -> None:
        self.get(name)
        self._discard(self.path(name))

    def _discard(self, path: Path) -> None:
        """Rename first (it vanishes from the list at once), then delete."""
        trash = self.root / f".removing-{path.name}-{datetime.now(UTC).timestamp():.0f}"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _clean_stale(self) -> None:
        for entry in self.root.glob(".tmp-*"):
            shutil.rmtree(entry, ignore_errors=True)
        for entry in self.root.glob(".removing-*"):
            shutil.rmtree(entry, ignore_errors=True)

    def install(
        self,
        name_or_path: str,
        *,
        name: str | None = None,
        quantization: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
        work_dir: Path | None = None,
        measure: bool | None = None,
        card_overrides: dict | None = None,
        extra_files: dict[str, bytes] | None = None,
    ) -> tuple[ModelCard, bool]:
        """Install a built-in model by name, a GGUF file, or a Hugging Face checkpoint folder.

        int8 installs are smoothed for int8 computation and, with `measure`, measured (perplexity,
        agreement, speed; see inference/quantize.py), which sets the card's default compute type.
        A built-in model installed by an older conversion format is converted again.
        measure: None reads PAWA_INSTALL_MEASURE (default on; the test suite turns it off for its
        tiny random models and measures the built-in ones).
        `card_overrides` (card field -> value) are set on the card before it is written, so
        the model never shows up with other values (an adapted model keeps its base's framing);
        `extra_files` (file name -> bytes) are written beside the weights in the same step (an
        adapted model's examples). Returns the card and whether anything was installed (False: already there).
        """
        if measure is None:
            measure = os.environ.get("PAWA_INSTALL_MEASURE", "1").lower() not in ("0", "false", "no", "off")
        self.root.mkdir(parents=True, exist_ok=True)
        self._clean_stale()
        if name_or_path in builtin.BUILTIN_MODELS:
            source = builtin.BUILTIN_MODELS[name_or_path]
            target_name = name or source.name
        else:
            path = Path(name_or_path).expanduser()
            if not path.exists():
                known = ", ".join(builtin.BUILTIN_MODELS)
                raise ModelNotFound(
                    f"{name_or_path!r} is neither a built-in model ({known}) nor an existing file or folder"
                )
            source = None
            target_name = name or slugify(path.stem if path.is_file() else path.name)
        if not NAME_RE.match(target_name):
            raise ModelError(f"Invalid model name {target_name!r}: use lowercase letters, digits, . _ -")
        quantization = quantization or (source.quantization if source else "int8")
        if quantization not in QUANTIZATIONS:
            raise ModelError(f"Unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")

        if self.is_installed(target_name) and not force:
            card = self.get(target_name)
            outdated = source is not None and target_name == source.name and card.conversion < CONVERSION
            if not outdated:
                if source is not None and target_name == source.name:
                    card = self._refresh_framing(card, source)
                return card, False

        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target_name}-", dir=self.root))
        try:
            if source is not None:
                card = source.install(staging, quantization, progress, work_dir or self.root / ".cache", measure)
                card.name = target_name
            else:
                card = install_path(path, staging, target_name, quantization, progress, measure)
            for key, value in (card_overrides or {}).items():
                setattr(card, key, value)
            for file_name, content in (extra_files or {}).items():
                (staging / Path(file_name).name).write_bytes(content)
            card.size_on_disk_bytes = sum(f.stat().st_size for f in staging.iterdir() if f.is_file())
            card.installed_at = datetime.now(UTC).isoformat(timespec="seconds")
            card.save(staging)
            final = self.path(target_name)
            if final.exists():
                self._discard(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return card, True


def install_path(
    path: Path, staging: Path, name: str, quantization: str, progress: Progress | None, measure: bool = True,
) -> ModelCard:
    from inference.quantize import Int8Settings

    int8 = Int8Settings(measure=measure)
    if path.is_file():
        from inference.gguf_convert import convert_gguf

        sha = sha256_file(path, progress)
        model, outcome = convert_gguf(path, staging, quantization, progress, int8=int8)
        return builtin.card_from_gguf(
            model, staging, name=name, quantization=quantization,
            source={"type": "gguf", "file": str(path), "sha256": sha}, outcome=outcome,
        )
    if (path / "config.json").is_file():
        from inference.hf_convert import convert_hf

        return convert_hf(path, staging, name=name, quantization=quantization, progress=progress, int8=int8)
    raise ModelError(f"{path} is neither a GGUF file nor a Hugging Face checkpoint folder (no config.json)")
