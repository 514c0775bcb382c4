"""Numbers for the Quantization docs page, computed from a real installed model.

CTranslate2 quantizes a weight matrix to int8 row by row: scale = 127 / max|row|,
q = round(w × scale), and it computes with q / scale. This takes a 4×4 block of the model's
float32 weights (dequantized from its source GGUF) and shows each step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from inference import builtin
from inference.card import ModelCard
from inference.errors import ModelError
from pawa.llm.store import model_store

TENSOR = "blk.0.attn_q.weight"


def _source_gguf(card: ModelCard):
    source = builtin.BUILTIN_MODELS.get(card.name)
    if source is not None and card.source.get("type") == "package":
        return source.gguf_path(model_store().root / ".cache", None)
    path = Path(card.source.get("file", ""))
    return path if card.source.get("type") == "gguf" and path.is_file() else None


@lru_cache(maxsize=4)
def _example(name: str, installed_at: str) -> dict | None:
    from inference.gguf_convert import read_gguf

    card = model_store().get(name)
    path = _source_gguf(card)
    if path is None or not path.is_file():
        return None
    weights = read_gguf(path).weight(TENSOR)
    scales = 127.0 / np.maximum(np.abs(weights).max(axis=1), 1e-12)
    block = weights[:4, :4]
    row_scales = scales[:4]
    quantized = np.rint(block * row_scales[:, None]).astype(np.int8)
    restored = quantized / row_scales[:, None]
    error = restored - block
    full_q = np.rint(weights * scales[:, None])
    full_error = np.abs(full_q / scales[:, None] - weights)
    return {
        "card": card,
        "tensor": TENSOR,
        "shape": list(weights.shape),
        "fp32": block.tolist(),
        "scales": row_scales.tolist(),
        "int8": quantized.tolist(),
        "restored": restored.tolist(),
        "error": error.tolist(),
        "tensor_mean_abs_error": float(full_error.mean()),
        "tensor_mean_abs_weight": float(np.abs(weights).mean()),
        "tensor_fp32_bytes": int(weights.size * 4),
        "tensor_int8_bytes": int(weights.size + weights.shape[0] * 4),
    }


def quantization_example() -> dict | None:
    """The example for the first installed model whose source GGUF is on this machine."""
    for card in sorted(model_store().list(), key=lambda c: c.parameters):
        try:
            example = _example(card.name, card.installed_at)
        except (ModelError, OSError):
            continue
        if example is not None:
            return example
    return None
