"""Hugging Face checkpoint → CTranslate2 (the path for sartifyllc/pawa-min-alpha), offline.

The tests build tiny randomly initialised Gemma-2 and Llama checkpoints with transformers and
compare CTranslate2's logits with transformers' logits on the same input.
"""

import ctranslate2
import numpy as np
import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from inference.engine import Engine, SamplingParams
from inference.registry import ModelStore


def make_checkpoint(path, kind: str, tokenizer_file) -> None:
    torch.manual_seed(0)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file), bos_token="<|endoftext|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=0, eos_token_id=2, pad_token_id=0)
    if kind == "gemma2":
        config = Gemma2Config(**common, head_dim=16, query_pre_attn_scalar=16, attn_logit_softcapping=None,
                              final_logit_softcapping=None, sliding_window=128)
        model = Gemma2ForCausalLM(config)
    else:
        config = LlamaConfig(**common, tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
    with torch.no_grad():  # RMSNorm weights start at 0 (Gemma) or 1 (Llama): make them non-trivial
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return model.eval()


@pytest.fixture(scope="module", params=["llama", "gemma2"])
def converted(request, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"hf-{request.param}")
    model = make_checkpoint(root / "checkpoint", request.param, tiny_models["llama"]["int8"] / "tokenizer.json")
    store = ModelStore(root / "models")
    card, installed = store.install(str(root / "checkpoint"), name=f"hf-{request.param}", quantization="float32")
    assert installed
    return request.param, model, store, card


def test_ctranslate2_logits_match_transformers(converted):
    kind, model, store, card = converted
    engine = Engine(store.path(card.name), device="cpu", compute_type="float32")
    tokens = engine.tokenize(" hello the dunia and the world habari")
    ids = [engine.tokenizer.token_to_id(t) for t in tokens]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    generator = ctranslate2.Generator(str(store.path(card.name)), compute_type="float32")
    got = np.array(generator.forward_batch([tokens]))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_the_card_describes_the_checkpoint(converted):
    kind, _, _, card = converted
    assert card.architecture == kind
    assert card.source["type"] == "hf"
    assert card.parameters > 10_000
    assert card.quantization == "float32"


def test_the_converted_model_streams(converted):
    _, _, store, card = converted
    engine = Engine(store.path(card.name), device="cpu")
    generation = engine.generate(engine.text_prompt("habari"), SamplingParams(temperature=0, max_tokens=5))
    assert "".join(generation) == generation.result.text
    assert generation.result.completion_tokens >= 1
