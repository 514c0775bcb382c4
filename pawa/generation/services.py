"""Writes for generations: enqueue, cancel, finish, interrupt. The chat and the API share them."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from inference import relay
from inference.engine import GenerationResult
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client
from pawa.generation.signals import generation_finished

log = logging.getLogger(__name__)

FINISH_STATUS = {
    "stop": Generation.Status.COMPLETE,
    "length": Generation.Status.COMPLETE,
    "cancelled": Generation.Status.STOPPED,
    "error": Generation.Status.ERROR,
    "interrupted": Generation.Status.INTERRUPTED,
}


class GenerationRefused(Exception):
    """The user may not start another generation now; the message says why, for people."""


def generation_check_capacity(*, user) -> None:
    limit = settings.PAWA_MAX_CONCURRENT_GENERATIONS
    if Generation.objects.for_user(user).active().count() >= limit:
        raise GenerationRefused(
            _("You already have %(count)d answers being written. Wait for one to finish.") % {"count": limit}
        )


def generation_create(
    *, user, model_name: str, prompt, params: dict, kind: str = Generation.Kind.CHAT,
    source: str = Generation.Source.WEB,
) -> Generation:
    """Save a queued generation and enqueue its task once the transaction commits."""
    from pawa.generation.tasks import run_generation

    generation = Generation.objects.create(
        user=user, kind=kind, source=source, model_name=model_name, prompt=prompt, params=params
    )
    generation_id = str(generation.id)

    def enqueue():
        sync_client().zadd(settings.PAWA_QUEUE_KEY, {generation_id: time.time()})
        run_generation.apply_async(args=[generation_id], queue=settings.PAWA_INFERENCE_QUEUE)

    transaction.on_commit(enqueue)
    return generation


def generation_cancel(*, generation: Generation) -> None:
    """Ask the worker to stop; it checks between tokens. A queued generation never starts."""
    relay.request_cancel(sync_client(), str(generation.id))
    updated = Generation.objects.filter(id=generation.id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.STOPPED, finish_reason="cancelled", finished_at=timezone.now()
    )
    if updated:
        client = sync_client()
        client.zrem(settings.PAWA_QUEUE_KEY, str(generation.id))
        generation.refresh_from_db()
        relay.close_stream(client, str(generation.id), {"type": "done", **generation.stats(), "text": ""})
        generation_finished.send(sender=Generation, generation=generation)


def generation_queue_position(generation_id) -> int | None:
    rank = sync_client().zrank(settings.PAWA_QUEUE_KEY, str(generation_id))
    return None if rank is None else rank + 1


def generation_start(*, generation_id) -> Generation | None:
    """Claim a queued generation for this worker; None if it was cancelled or already taken."""
    sync_client().zrem(settings.PAWA_QUEUE_KEY, str(generation_id))
    claimed = Generation.objects.filter(id=generation_id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.RUNNING, started_at=timezone.now()
    )
    return Generation.objects.get(id=generation_id) if claimed else None


def generation_finish(*, generation: Generation, result: GenerationResult) -> Generation:
    generation.status = FINISH_STATUS.get(result.finish_reason, Generation.Status.ERROR)
    generation.text = result.text
    generation.finish_reason = result.finish_reason
    generation.error = result.error or ""
    generation.prompt_tokens = result.prompt_tokens
    generation.completion_tokens = result.completion_tokens
    generation.time_to_first_token_ms = (
        round(result.time_to_first_token * 1000, 1) if result.time_to_first_token is not None else None
    )
    generation.tokens_per_second = round(result.tokens_per_second, 2)
    generation.total_ms = round(result.total_time * 1000, 1)
    generation.finished_at = timezone.now()
    # Only a running generation can finish: a reader may already have marked it interrupted.
    updated = Generation.objects.filter(id=generation.id, status=Generation.Status.RUNNING).update(
        status=generation.status, text=generation.text, finish_reason=generation.finish_reason,
        error=generation.error, prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        time_to_first_token_ms=generation.time_to_first_token_ms,
        tokens_per_second=generation.tokens_per_second, total_ms=generation.total_ms,
        finished_at=generation.finished_at,
    )
    if updated:
        generation_finished.send(sender=Generation, generation=generation)
    return generation


def generation_fail(*, generation: Generation, message: str) -> Generation:
    result = GenerationResult(finish_reason="error", error=message)
    return generation_finish(generation=generation, result=result)


def generation_interrupt_if_dead(*, generation_id) -> Generation | None:
    """A running generation whose worker stopped beating is marked interrupted, its text kept.

    Returns the generation when this call interrupted it (and wrote the final stream event).
    """
    client = sync_client()
    if relay.is_alive(client, str(generation_id)):
        return None
    text = relay.text_so_far(client, str(generation_id))
    updated = Generation.objects.filter(id=generation_id, status=Generation.Status.RUNNING).update(
        status=Generation.Status.INTERRUPTED, finish_reason="error", text=text,
        error="The worker stopped while writing this answer.", finished_at=timezone.now(),
    )
    if not updated:
        return None
    generation = Generation.objects.get(id=generation_id)
    relay.close_stream(client, str(generation_id), {
        "type": "error", "code": "interrupted", "message": generation.error, **generation.stats(),
    })
    generation_finished.send(sender=Generation, generation=generation)
    log.warning("generation %s interrupted: its worker stopped", generation_id)
    return generation


def generation_idle_event(*, generation_id) -> dict | None:
    """What a reader should hear when its stream has been silent for a while.

    Queued: the position in the queue. Running with a dead worker: an error (the generation is
    marked interrupted). Finished but its stream is gone (expired): the final result.
    """
    generation = Generation.objects.filter(id=generation_id).first()
    if generation is None:
        return {"type": "error", "code": "not_found", "message": "Generation not found."}
    if generation.status == Generation.Status.QUEUED:
        return {"type": "queued", "position": generation_queue_position(generation_id) or 1}
    if generation.status == Generation.Status.RUNNING:
        interrupted = generation_interrupt_if_dead(generation_id=generation_id)
        if interrupted is None:
            return None
        return {"type": "error", "code": "interrupted", "message": interrupted.error, **interrupted.stats()}
    if not sync_client().exists(relay.stream_key(str(generation_id))):
        return {"type": "done", "text": generation.text, **generation.stats()}
    return None
