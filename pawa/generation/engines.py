"""Loaded engines, one per model per worker process (loading takes a second or two)."""

import threading

from django.conf import settings

from inference.engine import Engine
from pawa.llm.store import model_store

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(model_name: str) -> Engine:
    with _lock:
        engine = _engines.get(model_name)
        if engine is None:
            store = model_store()
            store.get(model_name)  # raises ModelNotFound with a clear message
            engine = Engine.load(
                store.path(model_name),
                device=settings.PAWA_DEVICE,
                # Several tasks at once in one process (thread pool) share one engine.
                inter_threads=max(1, settings.PAWA_ENGINE_INTER_THREADS),
            )
            _engines[model_name] = engine
        return engine
