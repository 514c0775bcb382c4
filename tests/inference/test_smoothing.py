"""SmoothQuant folding (inference/smoothing.py) and the int8 conversion built on it (inference/quantize.py).

Real models have a few activation channels far larger than the rest; the tiny random models get
such outliers by scaling some RMSNorm channels up and the weights that read them down, which
leaves float32 outputs unchanged but makes int8 activations lose precision, as in real models.
"""

import ctranslate2
import numpy as np
import pytest

from inference import smoothing
from inference.gguf_convert import build_spec, read_gguf
from inference.quantize import Int8Settings, Texts
from inference.registry import ModelStore
from tests.inference.tiny import reference_logits, write_tiny_gguf

OUTLIERS = {3: 40.0, 17: 25.0, 29: 60.0}  # hidden channel → factor


def _with_outliers(weights: dict, layers: int, ffn_channels=(5, 11)) -> dict:
    """Move range into a few activation channels without changing the float32 function."""
    weights = {name: value.copy() for name, value in weights.items()}
    for i in range(layers):
        p = f"blk.{i}"
        for channel, factor in OUTLIERS.items():
            for norm, readers in (("attn_norm", ("attn_q", "attn_k", "attn_v")), ("ffn_norm", ("ffn_gate", "ffn_up"))):
                weights[f"{p}.{norm}.weight"][channel] *= factor
                for reader in readers:
                    weights[f"{p}.{reader}.weight"][:, channel] /= factor
        for channel in ffn_channels:
            weights[f"{p}.ffn_up.weight"][channel] *= 30.0
            weights[f"{p}.ffn_down.weight"][:, channel] /= 30.0
    return weights


@pytest.fixture(scope="module", params=["llama", "gemma2", "gemma3"])
def outlier_model(request, tmp_path_factory):
    """A tiny GGUF model whose activations have outlier channels: path, weights, spec builder, texts."""
    from inference.gguf_tokenizer import build_tokenizer

    arch = request.param
    path = tmp_path_factory.mktemp(f"smooth-{arch}") / "outliers.gguf"
    model = write_tiny_gguf(path, arch, seed=3, adjust=_with_outliers)
    parsed = read_gguf(path)
    add_bos = bool(parsed.metadata.get("tokenizer.ggml.add_bos_token", False))
    tokens = parsed.metadata["tokenizer.ggml.tokens"]
    bos = tokens[int(parsed.metadata["tokenizer.ggml.bos_token_id"])] if add_bos else ""
    texts = Texts(build_tokenizer(parsed.metadata), bos)
    return {"arch": arch, "path": path, "model": model, "build": lambda: build_spec(read_gguf(path)), "texts": texts}


IDS = [2, 40, 41, 57, 100, 7, 66, 81, 12, 3, 90, 45]


def _ids(model, spec) -> list[int]:
    # The reference implementation has no sliding window for gemma2: stay within it (6 tokens).
    ids = IDS[:6] if model["arch"] == "gemma2" else IDS
    return [i % spec.decoder.embeddings.weight.shape[0] for i in ids]


def test_the_forward_pass_matches_an_independent_implementation_and_ctranslate2(outlier_model, tmp_path):
    spec = outlier_model["build"]()
    ids = _ids(outlier_model, spec)
    got = smoothing.forward(spec, ids, logits=True)
    expected = reference_logits(outlier_model["model"], ids)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # And CTranslate2 itself. Its prefill (forward_batch, score_batch) attends past the per-layer
    # sliding window, so Gemma models are compared within the window (6 tokens here, 512 in Gemma 3).
    spec.validate()
    spec.optimize(quantization="float32")
    spec.save(str(tmp_path))
    text = "Habari ya asubuhi, dunia! The quick brown fox."
    limit = 6 if outlier_model["arch"].startswith("gemma") else None
    tokens = outlier_model["texts"].tokens(text)[:limit]
    ids = outlier_model["texts"].ids(text)[:limit]
    generator = ctranslate2.Generator(str(tmp_path), device="cpu", compute_type="float32")
    expected = np.array(generator.forward_batch([tokens]))[0]
    got = smoothing.forward(outlier_model["build"](), ids, logits=True)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("output_projection", [False, True])
def test_folding_leaves_float32_logits_unchanged(outlier_model, output_projection):
    spec = outlier_model["build"]()
    ids = _ids(outlier_model, spec)
    before = smoothing.forward(spec, ids, logits=True)
    stats = smoothing.calibrate(spec, outlier_model["texts"].calibration()[:6])
    result = smoothing.smooth(spec, stats, 0.5, output_projection=output_projection)
    after = smoothing.forward(spec, ids, logits=True)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    assert result.max_scale > 5  # the outliers were found and moved
    assert ("head" in result.sites) == output_projection


def _int8_error(directory, reference, tokens) -> float:
    generator = ctranslate2.Generator(str(directory), device="cpu", compute_type="int8")
    got = np.array(generator.score_batch([tokens])[0].log_probs)
    return float(np.abs(got - reference).mean())


def test_smoothing_lowers_the_int8_error(outlier_model, tmp_path):
    texts = outlier_model["texts"]
    float32 = tmp_path / "float32"
    smoothed = tmp_path / "smoothed"
    float32.mkdir()
    smoothed.mkdir()
    spec = outlier_model["build"]()
    spec.validate()
    spec.optimize(quantization="float32")
    spec.save(str(float32))
    spec = outlier_model["build"]()
    stats = smoothing.calibrate(spec, texts.calibration())
    smoothing.smooth(spec, stats, 0.5)
    spec.validate()
    spec.optimize(quantization="int8")
    spec.save(str(smoothed))
    tokens = texts.tokens("Habari ya leo? The quick brown fox jumps over the lazy dog; hakuna matata.")
    reference = np.array(
        ctranslate2.Generator(str(float32), device="cpu", compute_type="float32").score_batch([tokens])[0].log_probs
    )
    plain_error = _int8_error(float32, reference, tokens)  # quantized at load time, no smoothing
    smoothed_error = _int8_error(smoothed, reference, tokens)
    assert smoothed_error < 0.7 * plain_error, (plain_error, smoothed_error)


def test_an_int8_install_is_smoothed_measured_and_chooses_its_compute_type(outlier_model, tmp_path):
    store = ModelStore(tmp_path / "models")
    card, installed = store.install(str(outlier_model["path"]), name=f"outliers-{outlier_model['arch']}", measure=True)
    assert installed
    measurements = card.measurements
    assert measurements["int8"]["method"] == "SmoothQuant"
    assert measurements["int8"]["calibration_tokens"] > 500
    variants = [row["variant"] for row in measurements["quality"]]
    assert variants == ["float32", "int8", "int8_smoothed"]
    assert measurements["quality"][0]["ppl_sw_delta"] == 0
    assert {row["compute_type"] for row in measurements["speed"]} == {"int8", "float32"}
    assert all(row["tok_s"] > 0 and row["rss_mib"] >= 0 for row in measurements["speed"]), measurements["speed"]
    within = max(measurements["quality"][-1]["ppl_sw_delta"], measurements["quality"][-1]["ppl_en_delta"]) <= 3
    assert card.compute_type == ("int8" if within else "float32")
    assert card.compute_type in measurements["decision"]["en"]
    assert card.conversion == 2
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp-")]


def test_without_measuring_the_install_still_smooths(outlier_model, tmp_path):
    store = ModelStore(tmp_path / "models")
    card, _ = store.install(str(outlier_model["path"]), name="quick", measure=False)
    assert card.measurements["int8"]["method"] == "SmoothQuant"
    assert "quality" not in card.measurements
    assert card.compute_type == "int8"


def test_settings_validate_alpha():
    assert Int8Settings().alpha == 0.5
    scales = smoothing.smoothing_scales(np.array([0.0, 1.0, 100.0]), np.array([1.0, 0.0, 1.0]), 0.5)
    assert np.all(np.isfinite(scales)) and scales.min() >= smoothing.SCALE_MIN


@pytest.fixture(scope="module", params=["llama", "gemma2", "qwen2"])
def hf_checkpoint(request, tiny_models, tmp_path_factory):
    """A tiny random Hugging Face checkpoint (the PAWA-Min path) and its transformers model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tests.inference.test_hf_convert import make_checkpoint

    root = tmp_path_factory.mktemp(f"hf-smooth-{request.param}")
    tokenizer_file = tiny_models["llama"]["int8"] / "tokenizer.json"
    if request.param == "qwen2":  # q/k/v with biases
        model = make_checkpoint(root, "llama", tokenizer_file)
        config = Qwen2Config(vocab_size=model.config.vocab_size, hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=256, tie_word_embeddings=False)
        torch.manual_seed(1)
        model = Qwen2ForCausalLM(config).eval()
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "norm" in name or "bias" in name:
                    parameter.add_(torch.randn_like(parameter) * 0.1)
        model.save_pretrained(str(root))
    else:
        model = make_checkpoint(root, request.param, tokenizer_file)
    return request.param, root, model


def test_the_hugging_face_path_is_smoothed_exactly(hf_checkpoint, tmp_path):
    import torch
    from ctranslate2.converters import TransformersConverter

    kind, folder, model = hf_checkpoint
    spec = TransformersConverter(str(folder))._load()
    ids = [5, 60, 61, 70, 120, 9, 33, 47]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    smoothing.materialize(spec)
    np.testing.assert_allclose(smoothing.forward(spec, ids, logits=True), expected, rtol=1e-3, atol=1e-3)
    stats = smoothing.calibrate(spec, [list(range(3, 40)), list(range(50, 90))])
    smoothing.smooth(spec, stats, 0.5, output_projection=True)
    np.testing.assert_allclose(smoothing.forward(spec, ids, logits=True), expected, rtol=1e-3, atol=1e-3)

    store = ModelStore(tmp_path / "models")
    card, _ = store.install(str(folder), name=f"hf-{kind}", quantization="int8", measure=False)
    assert card.measurements["int8"]["method"] == "SmoothQuant"
    assert card.compute_type == "int8"
