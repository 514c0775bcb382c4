"""The model card: everything known about an installed model, stored as card.json beside it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from inference.errors import ModelError

CARD_FILE = "card.json"
# The conversion format: 2 = int8 with SmoothQuant calibration and install-time measurements.
# `models install` converts a built-in model again when its card is older.
CONVERSION = 2


@dataclass
class ModelCard:
    name: str
    display_name: str
    architecture: str
    parameters: int
    context_length: int
    kind: str  # "instruct" or "base"
    languages: list[str]
    license: str
    source: dict  # {"type": "gguf"|"hf"|"package", "file", "package", "version", "sha256"}
    quantization: str  # how the weights are stored on disk
    compute_type: str  # the default compute type on CPU, chosen by measurement
    chat_template: str
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = False
    end_tokens: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    default_system_prompt: str = ""
    description: dict = field(default_factory=dict)  # language code -> text
    threads: int = 1  # OpenMP threads per generation on CPU, chosen by measurement
    size_fp32_bytes: int = 0
    size_int8_bytes: int = 0
    size_on_disk_bytes: int = 0
    measurements: dict = field(default_factory=dict)
    # An adapted model's examples, placed before each chat answer (inference/retrieval.py):
    # {"file": "examples.jsonl", "k": 3}; empty for other models.
    retrieval: dict = field(default_factory=dict)
    conversion: int = 1
    installed_at: str = ""

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        try:
            data = json.loads((Path(model_dir) / CARD_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"No readable model card in {model_dir}: {exc}") from exc
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, model_dir: Path) -> None:
        (Path(model_dir) / CARD_FILE).write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False))

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self, language: str = "en") -> str:
        return self.description.get(language) or self.description.get("en", "")
