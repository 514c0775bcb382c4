"""GGUF → CTranslate2, without torch.

Reads a GGUF file with the `gguf` package, dequantizes its tensors to float32, builds the
CTranslate2 decoder spec for its architecture and saves it quantized. Supported
architectures: llama, gemma2, gemma3.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from inference.errors import ModelError
from inference.gguf_tokenizer import build_tokenizer
from inference.quantize import Int8Outcome, Int8Settings, Texts, write_model

SUPPORTED_ARCHITECTURES = ("llama", "gemma2", "gemma3")

Progress = Callable[[str, int, int], None]


@dataclass
class GGUFModel:
    path: Path
    metadata: dict
    tensors: dict[str, gguf.ReaderTensor] = field(repr=False)

    @property
    def architecture(self) -> str:
        return self.metadata["general.architecture"]

    def arch(self, key: str, default=None):
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def weight(self, name: str) -> np.ndarray:
        """A tensor dequantized to float32, shaped [out, in] like a torch Linear weight."""
        tensor = self.tensors.get(name)
        if tensor is None:
            raise ModelError(f"GGUF file is missing tensor {name!r}")
        array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        # F32 tensors come back as read-only views of the file; quantization needs writable arrays.
        return np.require(array, np.float32, ["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])


def read_gguf(path: str | Path) -> GGUFModel:
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise ModelError(f"{path.name} is not a readable GGUF file: {exc}") from exc
    metadata = {}
    for key, value in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            metadata[key] = value.contents()
        except Exception:  # noqa: BLE001 - a field we cannot decode is one we do not need
            continue
    return GGUFModel(path=path, metadata=metadata, tensors={t.name: t for t in reader.tensors})


def parameter_count(model: GGUFModel) -> int:
    return int(sum(int(np.prod(t.shape)) for t in model.tensors.values()))


def _token(model: GGUFModel, key: str) -> str | None:
    token_id = model.metadata.get(f"tokenizer.ggml.{key}_token_id")
    if token_id is None:
        return None
    return model.metadata["tokenizer.ggml.tokens"][int(token_id)]


def _set_norm(spec, weights: np.ndarray) -> None:
    spec.gamma = weights


def _set_linears(layer, model: GGUFModel, prefix: str) -> None:
    """The projections every architecture shares: fused QKV, output, gated FFN."""
    layer.self_attention.linear[0].weight = np.concatenate(
        [model.weight(f"{prefix}.attn_q.weight"), model.weight(f"{prefix}.attn_k.weight"),
         model.weight(f"{prefix}.attn_v.weight")]
    )
    layer.self_attention.linear[1].weight = model.weight(f"{prefix}.attn_output.weight")
    layer.ffn.linear_0.weight = model.weight(f"{prefix}.ffn_gate.weight")
    layer.ffn.linear_0_noact.weight = model.weight(f"{prefix}.ffn_up.weight")
    layer.ffn.linear_1.weight = model.weight(f"{prefix}.ffn_down.weight")


def _set_embeddings_and_output(model: GGUFModel, decoder) -> None:
    embeddings = model.weight("token_embd.weight")
    decoder.embeddings.weight = embeddings
    # Most small models tie the output projection to the embeddings.
    output = model.weight("output.weight") if "output.weight" in model.tensors else embeddings
    decoder.projection.weight = output
    _set_norm(decoder.layer_norm, model.weight("output_norm.weight"))


def _shape(model: GGUFModel) -> dict:
    """What every architecture's spec starts from: layers, heads, grouped key/value heads."""
    heads = int(model.arch("attention.head_count"))
    heads_kv = int(model.arch("attention.head_count_kv", heads))
    return {
        "num_layers": int(model.arch("block_count")),
        "num_heads": heads,
        "num_heads_kv": None if heads_kv == heads else heads_kv,
        "pre_norm": True,
        "ffn_glu": True,
        "rms_norm": True,
    }


def _llama_spec(model: GGUFModel, progress: Progress | None):
    shape = _shape(model)
    layers = shape["num_layers"]
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        **shape,
        activation=common_spec.Activation.SWISH,
        rotary_dim=0,
        # llama.cpp permutes Q/K rows for interleaved RoPE: keep them and rotate interleaved.
        rotary_interleave=True,
        rotary_base=float(model.arch("rope.freq_base", 10000.0)),
    )
    decoder = spec.decoder
    decoder.scale_embeddings = False
    _set_embeddings_and_output(model, decoder)
    for index, layer in enumerate(decoder.layer):
        prefix = f"blk.{index}"
        _set_norm(layer.self_attention.layer_norm, model.weight(f"{prefix}.attn_norm.weight"))
        _set_norm(layer.ffn.layer_norm, model.weight(f"{prefix}.ffn_norm.weight"))
        _set_linears(layer, model, prefix)
        if progress:
            progress("convert", index + 1, layers)
    return spec


def _gemma_spec(model: GGUFModel, progress: Progress | None):
    """Gemma 2 and Gemma 3: four norms per layer, GELU-tanh, scaled embeddings."""
    is_gemma3 = model.architecture == "gemma3"
    shape = _shape(model)
    layers = shape["num_layers"]
    head_dim = int(model.arch("attention.key_length"))
    global_base = float(model.arch("rope.freq_base", 10000.0))
    window = int(model.arch("attention.sliding_window", 0) or 0)
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        **shape,
        activation=common_spec.Activation.GELUTanh,
        rotary_dim=head_dim if is_gemma3 else 0,
        rotary_interleave=False,
        rotary_base=global_base,
        head_dim=head_dim,
        pre_post_layer_norm=True,
        qk_norm=is_gemma3,
        sliding_window=window or None,
    )
    decoder = spec.decoder
    if window:
        # The decoder-level window makes CTranslate2 prefill long prompts in window-sized
        # chunks, which gives wrong results when local and global layers are mixed. The
        # window is enforced per layer (attention masks) instead.
        decoder.sliding_window = np.int32(0)
    decoder.scale_embeddings = True
    decoder.start_from_zero_embedding = False
    _set_embeddings_and_output(model, decoder)
    for index, layer in enumerate(decoder.layer):
        prefix = f"blk.{index}"
        # GGUF norm weights already include Gemma's "+1": no residual-style gamma here.
        _set_norm(layer.input_layer_norm, model.weight(f"{prefix}.attn_norm.weight"))
        _set_norm(layer.post_attention_layer_norm, model.weight(f"{prefix}.post_attention_norm.weight"))
        _set_norm(layer.pre_feedforward_layer_norm, model.weight(f"{prefix}.ffn_norm.weight"))
        _set_norm(layer.post_feedforward_layer_norm, model.weight(f"{prefix}.post_ffw_norm.weight"))
        attention = layer.self_attention
        if is_gemma3:
            _set_norm(attention.q_norm, model.weight(f"{prefix}.attn_q_norm.weight"))
            _set_norm(attention.k_norm, model.weight(f"{prefix}.attn_k_norm.weight"))
            # Every 6th layer attends globally with a long RoPE period; the others locally.
            is_global = (index + 1) % 6 == 0
            attention.rotary_base = np.float32(global_base if is_global else 10000.0)
            attention.sliding_window = np.int32(0 if is_global else window)
        else:
            # Gemma 2 alternates: even layers local (sliding window), odd layers global.
            attention.sliding_window = np.int32(window if index % 2 == 0 else 0)
        _set_linears(layer, model, prefix)
        if progress:
            progress("convert", index + 1, layers)
    return spec


def build_spec(model: GGUFModel, progress: Progress | None = None):
    if model.architecture not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"Unsupported architecture {model.architecture!r}; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    builder = _llama_spec if model.architecture == "llama" else _gemma_spec
    spec = builder(model, progress)
    tokens = list(model.metadata["tokenizer.ggml.tokens"])
    vocab_rows = spec.decoder.embeddings.weight.shape[0]
    tokens = tokens[:vocab_rows] + [f"<extra_id_{i}>" for i in range(vocab_rows - len(tokens))]
    spec.register_vocabulary(tokens)
    spec.config.bos_token = _token(model, "bos") or tokens[0]
    spec.config.eos_token = _token(model, "eos") or tokens[0]
    spec.config.unk_token = _token(model, "unknown") or ""
    spec.config.layer_norm_epsilon = float(model.arch("attention.layer_norm_rms_epsilon", 1e-6))
    return spec


def convert_gguf(
    path: str | Path, output_dir: str | Path, quantization: str = "int8",
    progress: Progress | None = None, int8: Int8Settings | None = None,
) -> tuple[GGUFModel, Int8Outcome]:
    """Write a CTranslate2 model and its tokenizer.json into output_dir (which must exist).

    int8 quantization goes through SmoothQuant calibration (`inference.quantize.write_model`);
    `int8` says how (default: α 0.5, no install-time measurements). Returns the parsed GGUF model
    and the chosen compute type with its measurements. Raises ModelError for unreadable files and
    unsupported architectures.
    """
    model = read_gguf(path)
    tokenizer = build_tokenizer(model.metadata)
    add_bos = bool(model.metadata.get("tokenizer.ggml.add_bos_token", False))
    texts = Texts(tokenizer, (_token(model, "bos") or "") if add_bos else "")
    builds = []

    def build():
        builds.append(1)  # only the first build reports progress: the others are for measuring
        return build_spec(model, progress if len(builds) == 1 else None)

    tokenizer.save(str(Path(output_dir) / "tokenizer.json"))  # the install-time measurements read it
    outcome = write_model(
        build, Path(output_dir), quantization, texts,
        settings=int8 or Int8Settings(measure=False), progress=progress,
    )
    gc.collect()
    return model, outcome
