"""The inference task: run one generation and relay its tokens through its Redis Stream."""

import logging
import time

import redis

from celery import shared_task
from django.conf import settings

from inference import relay
from inference.engine import GenerationResult, SamplingParams
from inference.guided import Guide
from inference.errors import ModelError
from pawa.generation import services
from pawa.generation.cancellation import cancel_watcher
from pawa.generation.engines import get_engine
from pawa.generation.redis import sync_client
from pawa.ops.logs import log_context

log = logging.getLogger(__name__)


def sampling_params(params: dict) -> SamplingParams:
    return SamplingParams(
        temperature=float(params.get("temperature", 0.7)),
        top_p=float(params.get("top_p", 0.95)),
        top_k=int(params.get("top_k", 40)),
        repetition_penalty=float(params.get("repetition_penalty", 1.1)),
        max_tokens=int(params.get("max_tokens", 512)),
        seed=params.get("seed"),
        stop=tuple(params.get("stop") or ()),
        suppress_tokens=tuple(params.get("suppress_tokens") or ()),
        logprobs=params.get("logprobs"),
    )


# How long the worker keeps trying to write a generation's final event when Redis is away
# (restarting); readers that reconnect later learn the outcome from the database.
RELAY_RETRY_SECONDS = 30.0


@shared_task(name="pawa.generation.run", acks_late=True, ignore_result=True, bind=True)
def run_generation(self, generation_id: str, request_id: str | None = None) -> None:
    """Run one generation. `request_id`: the id of the web request (or websocket frame) that
    asked for it; this worker's log records carry it and the generation id (pawa/ops/logs.py)."""
    with log_context(request_id=request_id or "-", generation_id=generation_id):
        _run(generation_id, worker=self.request.hostname or "")


def _run(generation_id: str, *, worker: str) -> None:
    generation = services.generation_start(generation_id=generation_id)
    if generation is None:
        log.info("generation %s not started: no longer queued", generation_id)
        return  # cancelled while queued, or already run by another worker
    log.info("generation %s started on %s (model %s)", generation_id, worker, generation.model_name)
    writer = relay.StreamWriter(
        sync_client(), generation_id, flush_interval=settings.PAWA_STREAM_FLUSH_MS / 1000
    )
    stream = None
    try:
        writer.open(model=generation.model_name)
        engine = get_engine(generation.model_name)
        params = sampling_params(generation.params)
        if generation.kind == generation.Kind.CHAT:
            prompt = engine.chat_prompt(generation.prompt, max_tokens=params.max_tokens)
        else:
            prompt = engine.text_prompt(generation.prompt["prompt"])
        cancel = cancel_watcher().watch(generation_id)
        try:
            # An answer that must follow a JSON schema (the API's response_format and forced tool calls).
            schema = generation.params.get("json_schema")
            guide = Guide.json_schema(schema) if schema is not None else None
            stream = engine.generate(prompt, params, cancel=cancel, user=str(generation.user_id), guide=guide)
            sent = 0  # log-probability entries already relayed
            for delta in stream:
                entries = stream.result.logprobs[sent:]
                sent += len(entries)
                writer.delta(delta, entries)
            writer.delta("", stream.result.logprobs[sent:])
        finally:
            cancel_watcher().unwatch(generation_id)
            if stream is not None:
                stream.close()
        result = stream.result
    except ModelError as exc:
        generation = services.generation_fail(generation=generation, message=str(exc))
        _close(writer, {"type": "error", "code": "model_error", "message": str(exc), **generation.stats()})
        return
    except redis.RedisError as exc:
        # The relay is gone (Redis restarted or unreachable): the answer cannot reach its
        # readers, so it stops here and keeps the text written so far.
        log.warning("generation %s interrupted: the relay failed: %s", generation_id, exc)
        result = stream.result if stream is not None else GenerationResult()
        result.finish_reason, result.error = "interrupted", "The connection to Redis was lost while writing this answer."
        generation = services.generation_finish(generation=generation, result=result)
        _close(writer, {"type": "error", "code": "interrupted", "message": result.error, **generation.stats()})
        return
    except Exception as exc:
        log.exception("generation %s failed", generation_id)
        result = stream.result if stream is not None else GenerationResult()
        result.finish_reason, result.error = "error", "Internal error"
        generation = services.generation_finish(generation=generation, result=result)
        _close(writer, {"type": "error", "code": "internal_error", "message": "Internal error", **generation.stats()})
        raise exc
    generation = services.generation_finish(generation=generation, result=result)
    _close(writer, {"type": "done", **generation.stats()})
    log.info("generation %s finished on %s: %s, %s prompt + %s completion tokens, TTFT %s ms, %s tok/s",
             generation_id, worker, generation.finish_reason, generation.prompt_tokens,
             generation.completion_tokens, generation.time_to_first_token_ms, generation.tokens_per_second)


def _close(writer: relay.StreamWriter, event: dict) -> None:
    """Write the final event, retrying while Redis comes back (RELAY_RETRY_SECONDS at most)."""
    deadline = time.monotonic() + RELAY_RETRY_SECONDS
    while True:
        try:
            writer.close(event)
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                log.warning("generation %s: final event not written: %s", writer.id, exc)
                writer.stop_heartbeat()
                return
            time.sleep(1.0)
