"""Tiny GGUF models written in the tests, with a numpy reference forward pass."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

SPECIALS_SP = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
# Listed in merge order, as a trained SentencePiece BPE ranks them (score = -position).
PIECES_SP = ["▁", *"abcdefghijklmnopqrstuvwxyz", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *".,!?:'\n",
             "▁h", "▁ha", "▁hab", "ar", "▁habar", "▁habari", "▁d", "un", "▁dun", "ia", "▁dunia",
             "▁n", "▁na", "wa", "▁wa", "ch", "▁ch", "ai"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def sentencepiece_vocab():
    tokens = SPECIALS_SP + [f"<0x{b:02X}>" for b in range(256)] + PIECES_SP
    types = [3] * len(SPECIALS_SP) + [6] * 256 + [1] * len(PIECES_SP)
    scores = [0.0] * (len(SPECIALS_SP) + 256) + [-float(i) for i in range(len(PIECES_SP))]
    return tokens, scores, types


def gpt2_vocab():
    table = bytes_to_unicode()
    byte_tokens = [table[b] for b in range(256)]
    merges = ["Ġ h", "Ġh a", "b a", "r i", "Ġ d", "u n", "i a", "Ġd un", "Ġdun ia", "Ġ t", "h e", "Ġt he"]
    merged = [m.replace(" ", "") for m in merges]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + byte_tokens + merged
    types = [3, 3, 3] + [1] * (256 + len(merged))
    return tokens, merges, types


def write_tiny_gguf(path: Path, arch: str, *, seed: int = 0, vocab: str | None = None, context: int = 128,
                    adjust=None) -> dict:
    """Write a random tiny model; return its weights for the reference implementation.

    adjust(weights, layers) -> weights: changes the weights before they are written.
    """
    rng = np.random.default_rng(seed)
    hidden, heads, heads_kv, head_dim, ffn = 32, 4, 2, 8, 48
    layers = 6 if arch == "gemma3" else 2
    vocab = vocab or ("gpt2" if arch == "llama" else "llama")
    writer = gguf.GGUFWriter(str(path), arch)
    if vocab == "gpt2":
        tokens, merges, types = gpt2_vocab()
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt2")
        writer.add_token_merges(merges)
        bos, eos = 1, 2
        writer.add_chat_template(
            "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        )
    else:
        tokens, scores, types = sentencepiece_vocab()
        writer.add_tokenizer_model("llama")
        writer.add_token_scores(scores)
        writer.add_add_space_prefix(False)
        writer.add_add_bos_token(True)
        bos, eos = 2, 1
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(3 if vocab == "llama" else 0)
    writer.add_block_count(layers)
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0 if arch == "llama" else 1_000_000.0)
    if arch.startswith("gemma"):
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(6)
    writer.add_name(f"tiny-{arch}")
    writer.add_license("apache-2.0")

    def rand(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {"token_embd.weight": rand(len(tokens), hidden, scale=1.0 if arch == "llama" else 0.3),
               "output_norm.weight": 1 + rand(hidden, scale=0.1)}
    for i in range(layers):
        p = f"blk.{i}"
        weights.update({
            f"{p}.attn_norm.weight": 1 + rand(hidden, scale=0.1),
            f"{p}.ffn_norm.weight": 1 + rand(hidden, scale=0.1),
            f"{p}.attn_q.weight": rand(heads * head_dim, hidden),
            f"{p}.attn_k.weight": rand(heads_kv * head_dim, hidden),
            f"{p}.attn_v.weight": rand(heads_kv * head_dim, hidden),
            f"{p}.attn_output.weight": rand(hidden, heads * head_dim),
            f"{p}.ffn_gate.weight": rand(ffn, hidden),
            f"{p}.ffn_up.weight": rand(ffn, hidden),
            f"{p}.ffn_down.weight": rand(hidden, ffn),
        })
        if arch.startswith("gemma"):
            weights[f"{p}.post_attention_norm.weight"] = 1 + rand(hidden, scale=0.1)
            weights[f"{p}.post_ffw_norm.weight"] = 1 + rand(hidden, scale=0.1)
        if arch == "gemma3":
            weights[f"{p}.attn_q_norm.weight"] = 1 + rand(head_dim, scale=0.1)
            weights[f"{p}.attn_k_norm.weight"] = 1 + rand(head_dim, scale=0.1)
    if adjust is not None:
        weights = adjust(weights, layers)
    for name, value in weights.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"arch": arch, "weights": weights, "layers": layers, "heads": heads, "heads_kv": heads_kv,
            "head_dim": head_dim, "hidden": hidden, "window": 6}


def _rms(x, w, eps=1e-6):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, positions, base, interleaved):
    """x: [seq, heads, dim]."""
    dim = x.shape[-1]
    inv = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    angles = positions[:, None] * inv[None, :]  # [seq, dim/2]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        return out
    half = dim // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def reference_logits(model: dict, ids: list[int]) -> np.ndarray:
    """An independent float64 forward pass of the tiny model (llama.cpp semantics)."""
    w = {k: v.astype(np.float64) for k, v in model["weights"].items()}
    arch, heads, heads_kv, hd = model["arch"], model["heads"], model["heads_kv"], model["head_dim"]
    gemma = arch.startswith("gemma")
    n = len(ids)
    positions = np.arange(n, dtype=np.float64)
    x = w["token_embd.weight"][ids]
    if gemma:
        x = x * np.sqrt(model["hidden"])
    for i in range(model["layers"]):
        p = f"blk.{i}"
        h = _rms(x, w[f"{p}.attn_norm.weight"])
        q = (h @ w[f"{p}.attn_q.weight"].T).reshape(n, heads, hd)
        k = (h @ w[f"{p}.attn_k.weight"].T).reshape(n, heads_kv, hd)
        v = (h @ w[f"{p}.attn_v.weight"].T).reshape(n, heads_kv, hd)
        window = 0
        base = 10000.0
        if arch == "gemma3":
            q = _rms(q, w[f"{p}.attn_q_norm.weight"])
            k = _rms(k, w[f"{p}.attn_k_norm.weight"])
            is_global = (i + 1) % 6 == 0
            base = 1_000_000.0 if is_global else 10000.0
            window = 0 if is_global else model["window"]
        elif arch == "gemma2":
            base = 1_000_000.0  # the file's rope_freq_base; even layers attend locally
            window = model["window"] if i % 2 == 0 else 0
        q = _rope(q, positions, base, interleaved=not gemma)
        k = _rope(k, positions, base, interleaved=not gemma)
        group = heads // heads_kv
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd)
        mask = np.tril(np.ones((n, n), dtype=bool))
        if window:
            mask &= np.triu(np.ones((n, n), dtype=bool), -(window - 1))
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attention = np.einsum("hqk,khd->qhd", scores, v).reshape(n, heads * hd) @ w[f"{p}.attn_output.weight"].T
        if gemma:
            attention = _rms(attention, w[f"{p}.post_attention_norm.weight"])
        x = x + attention
        h = _rms(x, w[f"{p}.ffn_norm.weight"])
        gate = h @ w[f"{p}.ffn_gate.weight"].T
        act = _gelu_tanh(gate) if gemma else gate / (1 + np.exp(-gate))
        ffn = (act * (h @ w[f"{p}.ffn_up.weight"].T)) @ w[f"{p}.ffn_down.weight"].T
        if gemma:
            ffn = _rms(ffn, w[f"{p}.post_ffw_norm.weight"])
        x = x + ffn
    x = _rms(x, w["output_norm.weight"])
    return x @ w["token_embd.weight"].T


def reference_log_probs(model: dict, ids: list[int]) -> np.ndarray:
    logits = reference_logits(model, ids)
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return np.array([log_probs[t, ids[t + 1]] for t in range(len(ids) - 1)])
