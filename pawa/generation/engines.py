"""Loaded engines, one per model per worker process (loading takes a second or two).

Every task thread of the worker shares the process's engine for its model; the engine's
batch scheduler decodes their generations together (inference/batching.py).
"""

import threading

from django.conf import settings

from inference.engine import Engine
from pawa.llm.store import model_store
from pawa.ops.metrics import batch_observer

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(model_name: str) -> Engine:
    """The loaded engine for an installed model. Raises ModelNotFound or ModelError."""
    with _lock:
        engine = _engines.get(model_name)
        if engine is None:
            store = model_store()
            store.get(model_name)  # raises ModelNotFound with a clear message
            engine = Engine.load(
                store.path(model_name),
                device=settings.PAWA_DEVICE,
                intra_threads=settings.PAWA_INTRA_THREADS or None,
                replicas=settings.PAWA_ENGINE_REPLICAS or None,
                max_batch_size=settings.PAWA_MAX_BATCH_SIZE or None,
                time_limit=settings.PAWA_GENERATION_TIME_LIMIT or None,
            )
            if engine.scheduler is not None:
                engine.scheduler.on_batch = batch_observer(model_name)
            _engines[model_name] = engine
        return engine


def loaded_models() -> list[str]:
    """Names of the models this process has loaded."""
    with _lock:
        return sorted(_engines)


def engine_stats() -> dict[str, dict]:
    """Per loaded model: replicas, batch size, sequences running and waiting (see BatchScheduler.stats)."""
    with _lock:
        engines = dict(_engines)
    return {name: engine.stats() for name, engine in engines.items()}
