"""GGUF → CTranslate2: the converted model computes what an independent implementation computes."""

import ctranslate2
import numpy as np
import pytest
from tokenizers import Tokenizer

from inference.errors import ModelError
from inference.gguf_convert import convert_gguf, read_gguf
from tests.inference.tiny import reference_log_probs, reference_logits, write_tiny_gguf


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_converted_model_matches_the_reference_forward_pass(tiny_models, arch):
    tiny = tiny_models[arch]
    tokenizer = Tokenizer.from_file(str(tiny["float32"] / "tokenizer.json"))
    generator = ctranslate2.Generator(str(tiny["float32"]), compute_type="float32")
    text = "habari dunia, habari" if arch == "gemma3" else " hello the dunia and the world"
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    ids = [2 if arch == "gemma3" else 1, *ids]
    tokens = [tokenizer.id_to_token(i) for i in ids]
    assert len(ids) >= 8
    # CTranslate2 cannot prefill a prompt longer than a local layer's sliding window exactly
    # (generation past the window is exact, see below): score within the window.
    ids, tokens = ids[: tiny["model"]["window"]], tokens[: tiny["model"]["window"]]
    ct2 = np.array(generator.score_batch([tokens])[0].log_probs)
    expected = reference_log_probs(tiny["model"], ids)
    np.testing.assert_allclose(ct2, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_greedy_generation_matches_the_reference_past_the_sliding_window(tiny_models, arch):
    tiny = tiny_models[arch]
    generator = ctranslate2.Generator(str(tiny["float32"]), compute_type="float32")
    tokenizer = Tokenizer.from_file(str(tiny["float32"] / "tokenizer.json"))
    ids = [2 if arch == "gemma3" else 1, *tokenizer.encode(" habari", add_special_tokens=False).ids]
    result = generator.generate_batch(
        [[tokenizer.id_to_token(i) for i in ids]], max_length=3 * tiny["model"]["window"],
        sampling_topk=1, include_prompt_in_result=False, end_token=[],
    )
    expected = list(ids)
    for _ in range(3 * tiny["model"]["window"]):
        expected.append(int(reference_logits(tiny["model"], expected)[-1].argmax()))
    assert result[0].sequences_ids[0] == expected[len(ids):]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_int8_conversion_stays_close_to_float32(tiny_models, arch):
    tiny = tiny_models[arch]
    tokenizer = Tokenizer.from_file(str(tiny["int8"] / "tokenizer.json"))
    tokens = tokenizer.encode(" habari dunia habari", add_special_tokens=False).tokens
    exact = ctranslate2.Generator(str(tiny["float32"]), compute_type="float32").score_batch([tokens])[0].log_probs
    quantized = ctranslate2.Generator(str(tiny["int8"]), compute_type="int8").score_batch([tokens])[0].log_probs
    exact, quantized = np.array(exact), np.array(quantized)
    assert np.mean(np.abs(exact - quantized)) < 0.1 * np.mean(np.abs(exact))
    assert (tiny["int8"] / "model.bin").stat().st_size < (tiny["float32"] / "model.bin").stat().st_size / 2


def test_metadata_is_read(tiny_models):
    model = read_gguf(tiny_models["llama"]["gguf"])
    assert model.architecture == "llama"
    assert model.arch("block_count") == 2
    assert model.metadata["general.license"] == "apache-2.0"


def test_unsupported_architecture_is_refused(tmp_path):
    path = tmp_path / "other.gguf"
    write_tiny_gguf(path, "llama")
    data = path.read_bytes().replace(b"llama", b"falco", 1)
    path.write_bytes(data)
    with pytest.raises(ModelError, match="Unsupported architecture"):
        convert_gguf(path, tmp_path)


def test_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(ModelError):
        convert_gguf(path, tmp_path)
