"""The training task: runs on its own queue (settings.PAWA_TRAINING_QUEUE) and worker, so chat
and the API keep answering while a model learns."""

from celery import shared_task


@shared_task(name="pawa.adaptation.tasks.adaptation_train", acks_late=False, time_limit=None, soft_time_limit=None)
def adaptation_train(adaptation_id: int) -> None:
    """Entry point: the service does the work (a redelivered task finds the row claimed)."""
    from pawa.adaptation.services import adaptation_run

    adaptation_run(adaptation_id=adaptation_id)
