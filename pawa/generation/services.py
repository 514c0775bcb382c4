"""Writes for generations: enqueue, cancel, finish, interrupt. The chat and the API share them."""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inference import relay
from inference.engine import GenerationResult
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client
from pawa.generation.signals import generation_finished
from pawa.generation.workers import seconds_without_worker, worker_capacity
from pawa.ops.logs import current_request_id

log = logging.getLogger(__name__)

# A claimed generation's worker has this long to start its relay heartbeat; a queued one this
# long to appear in the queue (the enqueue runs just after the commit).
STARTUP_GRACE_SECONDS = 10
AVERAGE_CACHE_KEY = "generation:average-seconds"
NO_WORKER_MESSAGE = "No model worker is running: this answer could not be written. Try again later."

FINISH_STATUS = {
    "stop": Generation.Status.COMPLETE,
    "length": Generation.Status.COMPLETE,
    "cancelled": Generation.Status.STOPPED,
    "error": Generation.Status.ERROR,
    "interrupted": Generation.Status.INTERRUPTED,
}


def generation_create(
    *, user, model_name: str, prompt, params: dict, kind: str = Generation.Kind.CHAT,
    source: str = Generation.Source.WEB,
) -> Generation:
    """Save a queued generation and enqueue its task once the transaction commits.

    Admission (`pawa.generation.admission.generation_admit`) calls this after its checks; call
    that instead. When the broker does not take the task, the generation ends as an error (its
    readers get an error event) and GenerationRefused("queue_unavailable") is raised from the
    commit.
    """
    generation = Generation.objects.create(
        user=user, kind=kind, source=source, model_name=model_name, prompt=prompt, params=params
    )
    transaction.on_commit(lambda: _enqueue(generation))
    return generation


def _enqueue(generation: Generation) -> None:
    from pawa.generation.admission import GenerationRefused
    from pawa.generation.tasks import run_generation

    generation_id = str(generation.id)
    try:
        sync_client().zadd(settings.PAWA_QUEUE_KEY, {generation_id: time.time()})
        # Bounded: the producer pool, the connection and the publish retries all time out
        # (settings.py), so a broker in trouble costs seconds, not a wedged request.
        # The request id travels with the task: the worker's log records carry it (pawa/ops/logs.py).
        run_generation.apply_async(args=[generation_id, current_request_id()], queue=settings.PAWA_INFERENCE_QUEUE)
        log.info("generation %s queued (model %s, %s)", generation_id, generation.model_name, generation.source)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the generation cannot run
        log.error("could not enqueue generation %s: %s", generation_id, exc)
        generation_end_unstarted(
            generation_id=generation_id, code="queue_unavailable",
            message="The answer could not be queued: the message broker did not take it.",
        )
        raise GenerationRefused(
            "queue_unavailable", _("The answer could not be queued. Try again in a moment."), retry_after=5,
        ) from exc


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
    """1 for the next generation to start; None when it is not waiting in the queue."""
    rank = sync_client().zrank(settings.PAWA_QUEUE_KEY, str(generation_id))
    return None if rank is None else rank + 1


def generation_queue_length() -> int:
    """Generations waiting for a worker (chat and API together)."""
    return sync_client().zcard(settings.PAWA_QUEUE_KEY)


def generation_average_seconds() -> float | None:
    """Mean run time (seconds) of the last 20 completed generations; None before the first one.

    Cached for 10 s: every waiting reader asks once a second.
    """
    cached = cache.get(AVERAGE_CACHE_KEY)
    if cached is None:
        recent = list(
            Generation.objects.filter(status=Generation.Status.COMPLETE, total_ms__isnull=False)
            .order_by("-created_at").values_list("total_ms", flat=True)[:20]
        )
        cached = sum(recent) / len(recent) / 1000 if recent else 0.0
        cache.set(AVERAGE_CACHE_KEY, cached, 10)
    return cached or None


def generation_wait_estimate(position: int) -> int | None:
    """Seconds until the generation at this queue position starts, from measured throughput:
    position × the recent mean run time / the generations the live workers run at once.
    None until a generation has completed."""
    average = generation_average_seconds()
    if average is None:
        return None
    return max(1, math.ceil(position * average / worker_capacity()))


def generation_start(*, generation_id) -> Generation | None:
    """Claim a queued generation for this worker; None if it was cancelled or already taken.

    The worker must start its relay heartbeat (`StreamWriter.open`) within
    STARTUP_GRACE_SECONDS of this call, or the reaper takes it for dead.
    """
    claimed = Generation.objects.filter(id=generation_id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.RUNNING, started_at=timezone.now()
    )
    # After the claim: a queued generation always has its queue entry (the reaper relies on it).
    sync_client().zrem(settings.PAWA_QUEUE_KEY, str(generation_id))
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

    A generation claimed less than STARTUP_GRACE_SECONDS ago is left alone (its worker may not
    have started beating yet). Returns the generation when this call interrupted it (and wrote
    the final stream event), else None.
    """
    client = sync_client()
    if relay.is_alive(client, str(generation_id)):
        return None
    recently = timezone.now() - timedelta(seconds=STARTUP_GRACE_SECONDS)
    if Generation.objects.filter(id=generation_id, started_at__gt=recently).exists():
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


def generation_end_unstarted(*, generation_id, code: str, message: str) -> Generation | None:
    """End a queued generation that will never run: status error, an error event with `code` for
    its readers, its queue entry removed. Returns it, or None when it was no longer queued."""
    updated = Generation.objects.filter(id=generation_id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.ERROR, finish_reason="error", error=message, finished_at=timezone.now(),
    )
    client = sync_client()
    client.zrem(settings.PAWA_QUEUE_KEY, str(generation_id))
    if not updated:
        return None
    generation = Generation.objects.get(id=generation_id)
    relay.close_stream(client, str(generation_id), {
        "type": "error", "code": code, "message": message, **generation.stats(),
    })
    generation_finished.send(sender=Generation, generation=generation)
    log.warning("generation %s ended before it started: %s", generation_id, code)
    return generation


def _unstarted_fate(generation: Generation, *, without_worker: float, queued: set[str] | None = None):
    """(code, message) when a queued generation will never run, else None."""
    age = (timezone.now() - generation.created_at).total_seconds()
    if without_worker > settings.PAWA_NO_WORKER_GRACE:
        return "no_worker", NO_WORKER_MESSAGE
    if age > STARTUP_GRACE_SECONDS:
        in_queue = (str(generation.id) in queued) if queued is not None else (
            generation_queue_position(generation.id) is not None)
        if not in_queue:
            return "lost", "This answer was lost from the queue and will not be written. Send it again."
    if age > settings.PAWA_MAX_QUEUE_SECONDS:
        return "queue_timeout", "This answer waited too long in the queue. Send it again."
    return None


def generation_reap() -> dict[str, int]:
    """End every generation that will never finish; returns how many were ended, by kind.

    Running, with its worker's relay heartbeat gone: interrupted, partial text kept. Queued,
    with no worker seen for PAWA_NO_WORKER_GRACE seconds, without its queue entry, or waiting
    longer than PAWA_MAX_QUEUE_SECONDS: error. Each gets its final stream event. Safe to run
    from several processes at once (every change is a conditional UPDATE). The worker heartbeat
    runs it every PAWA_REAP_SECONDS.
    """
    ended = {"interrupted": 0, "failed": 0}
    for generation_id in Generation.objects.filter(status=Generation.Status.RUNNING).values_list("id", flat=True):
        if generation_interrupt_if_dead(generation_id=generation_id) is not None:
            ended["interrupted"] += 1
    waiting = list(Generation.objects.filter(status=Generation.Status.QUEUED).only("id", "created_at"))
    if waiting:
        without_worker = seconds_without_worker()
        queued = {member.decode() if isinstance(member, bytes) else member
                  for member in sync_client().zrange(settings.PAWA_QUEUE_KEY, 0, -1)}
        for generation in waiting:
            fate = _unstarted_fate(generation, without_worker=without_worker, queued=queued)
            if fate and generation_end_unstarted(generation_id=generation.id, code=fate[0], message=fate[1]):
                ended["failed"] += 1
    return ended


def generation_idle_event(*, generation_id) -> dict | None:
    """What a reader should hear when its stream has been silent for a while.

    Queued: its position in the queue and the estimated wait in seconds (None before any
    generation completed), or an error when it will never run (no live worker, lost from the
    queue). Running with a dead worker: an error (the generation is marked interrupted).
    Finished but its stream is gone (expired): the final result.
    """
    generation = Generation.objects.filter(id=generation_id).first()
    if generation is None:
        return {"type": "error", "code": "not_found", "message": "Generation not found."}
    if generation.status == Generation.Status.QUEUED:
        fate = _unstarted_fate(generation, without_worker=seconds_without_worker())
        if fate is not None:
            ended = generation_end_unstarted(generation_id=generation_id, code=fate[0], message=fate[1])
            if ended is not None:
                return {"type": "error", "code": fate[0], "message": fate[1], **ended.stats()}
            return None  # it changed meanwhile: its own event is on the stream
        position = generation_queue_position(generation_id) or 1
        return {"type": "queued", "position": position, "wait_seconds": generation_wait_estimate(position)}
    if generation.status == Generation.Status.RUNNING:
        interrupted = generation_interrupt_if_dead(generation_id=generation_id)
        if interrupted is None:
            return None
        return {"type": "error", "code": "interrupted", "message": interrupted.error, **interrupted.stats()}
    if not sync_client().exists(relay.stream_key(str(generation_id))):
        return {"type": "done", "text": generation.text, **generation.stats()}
    return None
