"""Prompt builders (card + tokenizer, no weights) for the web process, one per installed model."""

import threading

from inference.engine import PromptBuilder
from pawa.llm.store import model_store

_builders: dict[tuple[str, str], PromptBuilder] = {}
_lock = threading.Lock()


def prompt_builder(model_name: str) -> PromptBuilder:
    """Raises ModelNotFound for a model that is not installed."""
    store = model_store()
    card = store.get(model_name)
    key = (model_name, card.installed_at)
    with _lock:
        builder = _builders.get(key)
        if builder is None:
            builder = PromptBuilder(store.path(model_name))
            _builders[key] = builder
        return builder
