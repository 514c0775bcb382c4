import pytest

from inference.gguf_convert import convert_gguf
from tests.inference.tiny import write_tiny_gguf


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny llama (byte-level BPE) and gemma3 (SentencePiece BPE) models: GGUF, weights, CT2 dirs."""
    root = tmp_path_factory.mktemp("tiny")
    models = {}
    for arch in ["llama", "gemma3"]:
        gguf_path = root / f"tiny-{arch}.gguf"
        weights = write_tiny_gguf(gguf_path, arch)
        for quantization in ["float32", "int8"]:
            out = root / f"{arch}-{quantization}"
            out.mkdir()
            convert_gguf(gguf_path, out, quantization)
        models[arch] = {"gguf": gguf_path, "model": weights, "float32": root / f"{arch}-float32",
                        "int8": root / f"{arch}-int8"}
    return models


@pytest.fixture(scope="session")
def tiny_engine(tiny_models, tmp_path_factory):
    """An engine over the tiny llama model (ChatML template, byte-level BPE)."""
    from inference.engine import Engine
    from inference.registry import ModelStore

    store = ModelStore(tmp_path_factory.mktemp("store"))
    store.install(str(tiny_models["llama"]["gguf"]), name="tiny")
    engine = Engine(store.path("tiny"), device="cpu", replicas=2)
    yield engine
    engine.close()
