"""Load the default model when a worker starts, so the first answer does not wait for it."""

import logging
import threading

from celery.signals import worker_process_init, worker_ready
from django.conf import settings

log = logging.getLogger(__name__)


def preload_default_model() -> None:
    if not settings.PAWA_PRELOAD_MODEL or settings.PAWA_WORKER_ROLE != "inference":
        return
    from pawa.generation.engines import get_engine
    from pawa.llm.store import default_model_name

    name = default_model_name()
    if name is None:
        return

    def load():
        try:
            get_engine(name)
        except Exception:  # noqa: BLE001 - the first task will report the problem to its user
            log.exception("could not preload %s", name)

    threading.Thread(target=load, name="pawa-preload", daemon=True).start()


@worker_process_init.connect
def preload_in_pool_process(**kwargs):
    """Prefork children and the solo pool run tasks in this process."""
    preload_default_model()


@worker_ready.connect
def preload_in_thread_pool(sender=None, **kwargs):
    """The threads pool runs tasks in the main worker process, which gets no process-init signal."""
    pool_cls = getattr(getattr(sender, "controller", None), "pool_cls", None)
    if pool_cls is not None and pool_cls.__module__ == "celery.concurrency.thread":
        preload_default_model()
