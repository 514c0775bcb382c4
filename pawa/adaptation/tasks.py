"""The training task: runs on its own queue (settings.PAWA_TRAINING_QUEUE) and worker, so chat
and the API keep answering while a model learns."""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="pawa.adaptation.tasks.adaptation_train", acks_late=False, time_limit=None, soft_time_limit=None)
def adaptation_train(adaptation_id: int) -> None:
    """Entry point: the service does the work (a redelivered task finds the row claimed)."""
    from pawa.adaptation.services import adaptation_run

    adaptation_run(adaptation_id=adaptation_id)


@worker_ready.connect
def _fail_interrupted_runs(sender=None, **kwargs) -> None:
    """A training worker runs one training at a time: a run still marked running when it
    starts was interrupted (the worker died); say so instead of showing progress forever."""
    from django.conf import settings
    from django.utils import timezone

    from pawa.adaptation.models import Adaptation

    if settings.PAWA_WORKER_ROLE == "training":
        Adaptation.objects.filter(status=Adaptation.Status.RUNNING).update(
            status=Adaptation.Status.FAILED, error_code="interrupted", finished_at=timezone.now())
