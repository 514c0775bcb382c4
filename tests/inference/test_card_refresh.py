"""An installed built-in model gets the current prompt framing from `models install`."""

import json
import shutil

from inference.builtin import BUILTIN_MODELS, GEMMA_BASE_STOP, GEMMA_BASE_TEMPLATE
from inference.card import CARD_FILE
from inference.registry import ModelStore


def test_install_refreshes_an_old_framing_without_converting_again(tmp_path, real_models):
    store = ModelStore(tmp_path)
    folder = tmp_path / "gemma3-270m"
    folder.mkdir()
    source = real_models.path("gemma3-270m")
    for item in source.iterdir():
        if item.is_file():
            (folder / item.name).symlink_to(item) if item.name != CARD_FILE else shutil.copy(item, folder / item.name)
    old = json.loads((folder / CARD_FILE).read_text())
    old.update(chat_template="Swali: {{ messages[-1].content }}\nJibu:", stop=["Swali:"])
    (folder / CARD_FILE).write_text(json.dumps(old))
    weights_before = (folder / "model.bin").resolve()

    card, installed = store.install("gemma3-270m")

    assert installed is False
    assert card.chat_template == GEMMA_BASE_TEMPLATE and card.stop == GEMMA_BASE_STOP
    saved = json.loads((folder / CARD_FILE).read_text())
    assert saved["chat_template"] == GEMMA_BASE_TEMPLATE
    assert saved["installed_at"] == old["installed_at"]
    assert (folder / "model.bin").resolve() == weights_before
    assert BUILTIN_MODELS["gemma3-270m"].card["chat_template"] == GEMMA_BASE_TEMPLATE
