"""Hugging Face checkpoint folder → CTranslate2, through CTranslate2's Transformers converter.

Needs the optional extra (`pip install -r requirements-convert.txt`: torch + transformers).
This is how a user installs sartifyllc/pawa-min-alpha (Gemma-2 architecture, ChatML template)
after downloading it where they have internet.
"""

from __future__ import annotations

import json
from pathlib import Path

from inference.builtin import PLAIN_STOP, PLAIN_TEMPLATE
from inference.card import CONVERSION, ModelCard
from inference.errors import ModelError
from inference.quantize import Int8Settings, Texts, write_model

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _require_extras():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:
        raise ModelError(
            "Converting a Hugging Face checkpoint needs torch and transformers: "
            "pip install -r requirements-convert.txt"
        ) from exc
    return TransformersConverter


def convert_hf(path: Path, staging: Path, *, name: str, quantization: str, progress=None,
               int8: Int8Settings | None = None) -> ModelCard:
    """Convert a Hugging Face checkpoint folder into `staging` and return its model card.

    The spec comes from CTranslate2's Transformers converter (`_load`, the step of its `convert`
    that builds the spec); int8 then goes through SmoothQuant calibration and install-time
    measurements like the GGUF path (inference/quantize.py). Raises ModelError when the extra is
    missing or the architecture is not supported.
    """
    TransformersConverter = _require_extras()
    from transformers import AutoTokenizer

    from inference.registry import sha256_file

    config = json.loads((path / "config.json").read_text())
    architecture = (config.get("architectures") or [config.get("model_type", "unknown")])[0]
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    add_bos = bool(tokenizer.bos_token) and not (template and "bos_token" in template)
    texts = Texts(tokenizer.backend_tokenizer, tokenizer.bos_token if add_bos else "")

    def build():
        spec = TransformersConverter(str(path), low_cpu_mem_usage=True)._load()
        if spec is None:
            raise NotImplementedError("This model is not supported by CTranslate2 or this converter")
        return spec

    tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))  # the install-time measurements read it
    if progress:
        progress("convert", 0, 1)
    try:
        outcome = write_model(build, staging, quantization, texts,
                              settings=int8 or Int8Settings(measure=False), progress=progress)
    except (NotImplementedError, ValueError, KeyError, OSError) as exc:
        raise ModelError(f"Cannot convert {path.name} ({architecture}): {exc}") from exc
    if progress:
        progress("convert", 1, 1)
    uses_chatml = "<|im_start|>" in tokenizer.get_vocab()
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    parameters = _parameter_count(weights)
    return ModelCard(
        name=name,
        display_name=config.get("_name_or_path") or path.name,
        architecture=config.get("model_type", architecture),
        parameters=parameters,
        context_length=int(config.get("max_position_embeddings", 2048)),
        kind="instruct" if template or uses_chatml else "base",
        languages=[],
        license="see the checkpoint's licence",
        source={"type": "hf", "folder": str(path),
                "sha256": sha256_file(weights[0]) if weights else ""},
        quantization=quantization,
        compute_type=outcome.compute_type,
        measurements=dict(outcome.measurements),
        conversion=CONVERSION,
        chat_template=template or (CHATML_TEMPLATE if uses_chatml else PLAIN_TEMPLATE),
        stop=[] if template or uses_chatml else list(PLAIN_STOP),
        bos_token=tokenizer.bos_token or "",
        eos_token=tokenizer.eos_token or "",
        add_bos=add_bos,
        end_tokens=["<|im_end|>"] if uses_chatml else [],
        size_fp32_bytes=parameters * 4,
        size_int8_bytes=(staging / "model.bin").stat().st_size if quantization == "int8" else 0,
    )


def _parameter_count(weight_files: list[Path]) -> int:
    total = 0
    for weight_file in weight_files:
        if weight_file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(weight_file), framework="numpy") as handle:
                for key in handle.keys():
                    shape = handle.get_slice(key).get_shape()
                    count = 1
                    for dim in shape:
                        count *= dim
                    total += count
    return total
