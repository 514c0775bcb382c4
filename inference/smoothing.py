"""SmoothQuant for CTranslate2 decoder specs: make int8 computation keep float32's accuracy.

CTranslate2's int8 computation quantizes each weight row by its maximum and, at run time, each
token's activation row by *its* maximum. A few input channels of a small model's activations are
tens of times larger than the rest (outliers), so one row scale spends nearly all 8 bits on them
and rounds the other channels to a handful of levels. SmoothQuant (Xiao et al., 2023, "SmoothQuant:
Accurate and Efficient Post-Training Quantization for Large Language Models", arXiv:2211.10438)
moves that range from the activations into the weights, which quantize per output row and absorb
it easily: for input channel j of a linear layer,

    s_j = max|X_j|^α / max|W_j|^(1−α),      X·Wᵀ = (X / s)·(W · s)ᵀ,

with X / s folded offline into whatever produces X. Where each input is folded:

- q/k/v (fused) ← the RMSNorm before attention (its gamma divided by s);
- gate/up ← the RMSNorm before the feed-forward block;
- output projection ← the value projection's output rows (attention is linear in V);
- down projection ← the up projection's output rows (act(gate) · up is linear in up);
- the vocabulary projection ← the final RMSNorm, after untying it from the embeddings (optional:
  a second copy of the vocabulary matrix).

The transform is exact in real arithmetic: float32 logits are unchanged (to rounding). The
per-channel maxima come from `calibrate`, a float32 NumPy forward pass of the spec itself over a
small built-in text set (`inference/texts`). This module changes weights only before
`spec.validate()`; it works on specs built by the GGUF converter and by CTranslate2's Transformers
converter alike (llama, mistral, qwen2, gemma2 and gemma3 layouts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from ctranslate2.specs import common_spec

from inference.errors import ModelError

# s is kept within these bounds so that a dead channel (max 0) or a huge outlier cannot produce
# an infinite or zero scale.
SCALE_MIN, SCALE_MAX = 1e-4, 1e4
EPS = 1e-5


def _array(value) -> np.ndarray:
    """A spec value as a writable float32 NumPy array (Transformers specs hold torch tensors)."""
    if value is None:
        raise ModelError("Model spec is missing a weight the int8 smoothing needs")
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.array(value, dtype=np.float32, copy=True)


def _view(value) -> np.ndarray:
    """A spec value as a float32 NumPy array, without copying when it already is one."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        return value
    if hasattr(value, "detach") and str(value.dtype) == "torch.float32":
        return value.detach().cpu().numpy()  # shares the tensor's memory
    return _array(value)


def materialize(spec) -> None:
    """Replace every floating-point torch tensor in the spec by a float32 NumPy array, once.

    CTranslate2's Transformers converter fills specs with torch tensors (often bfloat16); the
    forward pass and the folding then read NumPy without converting each time.
    """

    converted: dict[int, np.ndarray] = {}  # a tensor shared by two variables (tied embeddings) stays shared

    def convert(layer, name, value):
        if hasattr(value, "detach") and value.is_floating_point():
            array = converted.get(id(value))
            if array is None:
                array = converted[id(value)] = value.detach().float().cpu().numpy()
            setattr(layer, name.split("/")[-1], array)

    spec._visit(convert)


def _scalar(value, default=None):
    if value is None or isinstance(value, str):  # model_spec.OPTIONAL is a string sentinel
        return default
    try:
        return value.item() if hasattr(value, "item") else value
    except (TypeError, ValueError):
        return default


@dataclass
class _Layer:
    """Accessors for one decoder layer, whatever the spec's norm layout."""

    spec: object

    @property
    def pre_post(self) -> bool:
        return hasattr(self.spec, "input_layer_norm")

    @property
    def attention(self):
        return self.spec.self_attention

    @property
    def attention_norm(self):
        return self.spec.input_layer_norm if self.pre_post else self.spec.self_attention.layer_norm

    @property
    def ffn_norm(self):
        return self.spec.pre_feedforward_layer_norm if self.pre_post else self.spec.ffn.layer_norm


def _norm_gamma(norm) -> np.ndarray:
    """The effective RMSNorm scale (Gemma's Transformers layout stores gamma − 1)."""
    gamma = _array(norm.gamma)
    if _scalar(getattr(norm, "layer_norm_use_residual", None), False):
        gamma = gamma + 1.0
    return gamma


def _set_norm_gamma(norm, gamma: np.ndarray) -> None:
    if _scalar(getattr(norm, "layer_norm_use_residual", None), False):
        gamma = gamma - 1.0
    norm.gamma = gamma.astype(np.float32)


@dataclass
class Geometry:
    hidden: int
    heads: int
    heads_kv: int
    head_dim: int


def geometry(decoder, layer) -> Geometry:
    hidden = int(decoder.embeddings.weight.shape[1])
    heads = int(_scalar(decoder.num_heads))
    attention = layer.self_attention
    head_dim = int(_scalar(getattr(attention, "head_dim", None), hidden // heads))
    heads_kv = int(_scalar(getattr(attention, "num_heads_kv", None), heads))
    return Geometry(hidden=hidden, heads=heads, heads_kv=heads_kv, head_dim=head_dim)


def supported(spec) -> str | None:
    """None if `spec` can be smoothed, else the reason it cannot (a sentence)."""
    decoder = getattr(spec, "decoder", None)
    if decoder is None or not hasattr(decoder, "layer"):
        return "not a decoder-only model"
    for layer in decoder.layer:
        attention = layer.self_attention
        if len(getattr(attention, "linear", [])) != 2:
            return "attention without one fused q/k/v projection"
        if hasattr(_Layer(layer).attention_norm, "beta"):
            return "LayerNorm with a bias (only RMSNorm models are smoothed)"
        if not hasattr(layer.ffn, "linear_0_noact"):
            return "feed-forward block without a gate (only gated FFNs are smoothed)"
        if hasattr(attention, "v_norm"):
            return "value normalisation between v and o"
    return None


# --- the float32 reference forward pass (calibration) ------------------------------------------

def _rms(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * gamma


def _rope(x: np.ndarray, positions: np.ndarray, base: float, rotary_dim: int, interleaved: bool) -> np.ndarray:
    """x: [tokens, heads, head_dim]; rotates the first rotary_dim dims of each head."""
    dim = rotary_dim or x.shape[-1]
    inv = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    angles = positions[:, None] * inv[None, :]
    cos = np.cos(angles).astype(np.float32)[:, None, :]
    sin = np.sin(angles).astype(np.float32)[:, None, :]
    rotated, rest = x[..., :dim], x[..., dim:]
    if interleaved:
        x1, x2 = rotated[..., 0::2], rotated[..., 1::2]
        out = np.empty_like(rotated)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
    else:
        half = dim // 2
        x1, x2 = rotated[..., :half], rotated[..., half:]
        out = np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return np.concatenate([out, rest], axis=-1) if rest.shape[-1] else out


def _activation(kind: int, x: np.ndarray) -> np.ndarray:
    if kind == common_spec.Activation.GELUTanh:
        return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + 0.044715 * x * x * x)))
    if kind == common_spec.Activation.GELU:
        from math import erf, sqrt

        return x * 0.5 * (1 + np.vectorize(erf)(x / sqrt(2)).astype(np.float32))
    if kind == common_spec.Activation.SWISH:
        return x / (1 + np.exp(-x))
    if kind == common_spec.Activation.RELU:
        return np.maximum(x, 0)
    raise ModelError(f"Activation {kind} is not supported by the int8 calibration")


Observer = Callable[[str, np.ndarray], None]


def forward(spec, ids: list[int], observe: Observer | None = None, *, logits: bool = False) -> np.ndarray:
    """A float32 forward pass of a CTranslate2 decoder spec over one sequence.

    ids: token ids, length n. Returns the final normalised hidden states [n, hidden], or the
    logits [n, vocabulary] with `logits=True`. `observe(site, x)` is called with each linear
    layer's input x [n, in_features]; sites are "L.qkv", "L.o", "L.gate_up", "L.down" (L the layer
    index) and "head". Follows CTranslate2's decoder semantics (pre-norm, optional Gemma pre/post
    norms, q/k norms, per-layer RoPE base and sliding window, grouped key/value heads).
    """
    decoder = spec.decoder
    eps = float(_scalar(getattr(spec.config, "layer_norm_epsilon", None), 1e-6) or 1e-6)
    embeddings = decoder.embeddings.weight
    x = _view(embeddings[ids]) if isinstance(embeddings, np.ndarray) else _view(embeddings)[ids]
    scale = _scalar(getattr(decoder.embeddings, "multiply_by_sqrt_depth", None))
    if scale is None and _scalar(decoder.scale_embeddings, False):
        scale = np.sqrt(x.shape[1])
    if scale:
        x = x * np.float32(scale)
    n = len(ids)
    positions = np.arange(n, dtype=np.float64)
    activation = int(_scalar(decoder.activation))
    default_window = int(_scalar(getattr(decoder, "sliding_window", None), 0) or 0)
    for index, layer_spec in enumerate(decoder.layer):
        layer = _Layer(layer_spec)
        attention = layer.attention
        g = geometry(decoder, layer_spec)
        h = _rms(x, _norm_gamma(layer.attention_norm), eps)
        if observe:
            observe(f"{index}.qkv", h)
        qkv = h @ _view(attention.linear[0].weight).T
        bias = getattr(attention.linear[0], "bias", None)
        if bias is not None and not isinstance(bias, str):
            qkv = qkv + _view(bias)
        q_end, k_end = g.heads * g.head_dim, (g.heads + g.heads_kv) * g.head_dim
        q = qkv[:, :q_end].reshape(n, g.heads, g.head_dim)
        k = qkv[:, q_end:k_end].reshape(n, g.heads_kv, g.head_dim)
        v = qkv[:, k_end:].reshape(n, g.heads_kv, g.head_dim)
        if getattr(attention, "q_norm", None) is not None and hasattr(attention, "q_norm"):
            q = _rms(q, _norm_gamma(attention.q_norm), eps)
            k = _rms(k, _norm_gamma(attention.k_norm), eps)
        rotary_dim = _scalar(getattr(attention, "rotary_dim", None))
        if rotary_dim is not None:
            base = float(_scalar(attention.rotary_base, 10000.0))
            interleaved = bool(_scalar(attention.rotary_interleave, True))
            q = _rope(q, positions, base, int(rotary_dim), interleaved)
            k = _rope(k, positions, base, int(rotary_dim), interleaved)
        group = g.heads // g.heads_kv
        k = np.repeat(k, group, axis=1)
        v_full = np.repeat(v, group, axis=1)
        queries_scale = _scalar(getattr(attention, "queries_scale", None), 1 / np.sqrt(g.head_dim))
        scores = np.einsum("qhd,khd->hqk", q * np.float32(queries_scale), k)
        mask = np.tril(np.ones((n, n), dtype=bool))
        window = int(_scalar(getattr(attention, "sliding_window", None), default_window) or 0)
        if window:
            mask &= np.triu(np.ones((n, n), dtype=bool), -(window - 1))
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = np.einsum("hqk,khd->qhd", scores, v_full).reshape(n, g.heads * g.head_dim)
        if observe:
            observe(f"{index}.o", context)
        out = context @ _view(attention.linear[1].weight).T
        bias = getattr(attention.linear[1], "bias", None)
        if bias is not None and not isinstance(bias, str):
            out = out + _view(bias)
        if layer.pre_post:
            out = _rms(out, _norm_gamma(layer_spec.post_attention_layer_norm), eps)
        x = x + out
        h = _rms(x, _norm_gamma(layer.ffn_norm), eps)
        if observe:
            observe(f"{index}.gate_up", h)
        ffn = layer_spec.ffn
        inner = _activation(activation, h @ _view(ffn.linear_0.weight).T) * (h @ _view(ffn.linear_0_noact.weight).T)
        if observe:
            observe(f"{index}.down", inner)
        out = inner @ _view(ffn.linear_1.weight).T
        if layer.pre_post:
            out = _rms(out, _norm_gamma(layer_spec.post_feedforward_layer_norm), eps)
        x = x + out
    x = _rms(x, _norm_gamma(decoder.layer_norm), eps)
    if observe:
        observe("head", x)
    if not logits:
        return x
    result = x @ _view(decoder.projection.weight).T
    softcap = _scalar(getattr(decoder, "final_logit_softcapping", None))
    if softcap:
        result = np.tanh(result / softcap) * softcap
    return result


@dataclass
class ActivationStats:
    """Per-channel max |x| of each linear layer's input, over the calibration tokens."""

    maxima: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: int = 0

    def observe(self, site: str, x: np.ndarray) -> None:
        value = np.abs(x).max(axis=0).astype(np.float32)
        current = self.maxima.get(site)
        self.maxima[site] = value if current is None else np.maximum(current, value)


def calibrate(spec, sequences: Iterable[list[int]], progress=None) -> ActivationStats:
    """Run the float32 forward pass over token sequences and keep each input channel's max |x|."""
    stats = ActivationStats()
    materialize(spec)
    sequences = list(sequences)
    for done, ids in enumerate(sequences, 1):
        forward(spec, ids, stats.observe)
        stats.tokens += len(ids)
        if progress:
            progress("calibrate", done, len(sequences))
    return stats


# --- folding -------------------------------------------------------------------------------

def smoothing_scales(x_max: np.ndarray, w_max: np.ndarray, alpha: float) -> np.ndarray:
    """s_j = max|X_j|^α / max|W_j|^(1−α) (SmoothQuant, eq. 4), clipped to [1e-4, 1e4]."""
    x_max = np.maximum(x_max.astype(np.float64), EPS)
    w_max = np.maximum(w_max.astype(np.float64), EPS)
    scales = x_max**alpha / w_max ** (1 - alpha)
    return np.clip(scales, SCALE_MIN, SCALE_MAX).astype(np.float32)


def _column_max(*weights: np.ndarray) -> np.ndarray:
    return np.max(np.stack([np.abs(w).max(axis=0) for w in weights]), axis=0)


@dataclass
class SmoothingResult:
    """What `smooth` did: α, which sites it folded, and the largest per-channel scale."""

    alpha: float
    sites: list[str]
    output_projection: bool
    max_scale: float

    def as_dict(self) -> dict:
        kinds = sorted({site.split(".")[-1] for site in self.sites if site != "head"})
        return {"alpha": self.alpha, "layers": len(self.sites) // max(len(kinds), 1), "sites_per_layer": kinds,
                "output_projection": self.output_projection, "max_scale": round(self.max_scale, 2)}


def smooth(spec, stats: ActivationStats, alpha: float, *, output_projection: bool = False) -> SmoothingResult:
    """Fold SmoothQuant scales into the spec's weights, in place (before `spec.validate()`).

    alpha in [0, 1]: 0 leaves activations alone, 1 moves all of their range into the weights.
    output_projection: also smooth the vocabulary projection's input through the final norm; the
    projection is then stored apart from the embeddings (a second vocabulary-sized matrix).
    Raises ModelError if the spec's layout is not supported (see `supported`).
    """
    reason = supported(spec)
    if reason:
        raise ModelError(f"Cannot smooth this model for int8: {reason}")
    decoder = spec.decoder
    sites: list[str] = []
    largest = 1.0
    for index, layer_spec in enumerate(decoder.layer):
        layer = _Layer(layer_spec)
        attention = layer.attention
        g = geometry(decoder, layer_spec)
        qkv = _array(attention.linear[0].weight)
        # q/k/v ← attention norm.
        s = smoothing_scales(stats.maxima[f"{index}.qkv"], _column_max(qkv), alpha)
        _set_norm_gamma(layer.attention_norm, _norm_gamma(layer.attention_norm) / s)
        qkv *= s[None, :]
        # o ← v rows; a value channel is shared by the `group` query heads that read it.
        group = g.heads // g.heads_kv
        o = _array(attention.linear[1].weight)
        x_max = stats.maxima[f"{index}.o"].reshape(g.heads_kv, group, g.head_dim).max(axis=1)
        w_max = np.abs(o).max(axis=0).reshape(g.heads_kv, group, g.head_dim).max(axis=1)
        s_v = smoothing_scales(x_max.reshape(-1), w_max.reshape(-1), alpha)
        k_end = (g.heads + g.heads_kv) * g.head_dim
        qkv[k_end:] /= s_v[:, None]
        bias = getattr(attention.linear[0], "bias", None)
        if bias is not None and not isinstance(bias, str):
            bias = _array(bias)
            bias[k_end:] /= s_v
            attention.linear[0].bias = bias
        s_o = np.repeat(s_v.reshape(g.heads_kv, 1, g.head_dim), group, axis=1).reshape(-1)
        o *= s_o[None, :]
        attention.linear[0].weight = qkv
        attention.linear[1].weight = o
        # gate/up ← feed-forward norm.
        ffn = layer_spec.ffn
        gate, up, down = _array(ffn.linear_0.weight), _array(ffn.linear_0_noact.weight), _array(ffn.linear_1.weight)
        s_f = smoothing_scales(stats.maxima[f"{index}.gate_up"], _column_max(gate, up), alpha)
        _set_norm_gamma(layer.ffn_norm, _norm_gamma(layer.ffn_norm) / s_f)
        gate *= s_f[None, :]
        up *= s_f[None, :]
        # down ← up rows.
        s_d = smoothing_scales(stats.maxima[f"{index}.down"], _column_max(down), alpha)
        up /= s_d[:, None]
        down *= s_d[None, :]
        ffn.linear_0.weight, ffn.linear_0_noact.weight, ffn.linear_1.weight = gate, up, down
        largest = max(largest, float(s.max()), float(s_v.max()), float(s_f.max()), float(s_d.max()))
        sites.extend([f"{index}.qkv", f"{index}.o", f"{index}.gate_up", f"{index}.down"])
    if output_projection:
        projection = _array(decoder.projection.weight)
        s_h = smoothing_scales(stats.maxima["head"], _column_max(projection), alpha)
        _set_norm_gamma(decoder.layer_norm, _norm_gamma(decoder.layer_norm) / s_h)
        decoder.projection.weight = projection * s_h[None, :]  # a new array: untied from the embeddings
        largest = max(largest, float(s_h.max()))
        sites.append("head")
    return SmoothingResult(alpha=alpha, sites=sites, output_projection=output_projection, max_scale=largest)
