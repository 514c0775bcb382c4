"""OpenAI-compatible endpoints under /v1/. Generations take the same Celery/Redis Stream path as the chat."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from adrf.views import APIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from inference import relay
from inference.registry import ModelNotFound
from pawa.api import limits
from pawa.api.auth import ApiKeyAuthentication
from pawa.api.errors import ApiError, error_body, exception_handler, invalid_request
from pawa.api.models import ApiUsage
from pawa.api.parsers import StrictJSONParser
from pawa.api.serializers import ChatCompletionInput, CompletionInput, PawaChatRequestInput
from pawa.generation import services as generation_services
from pawa.generation.admission import Admission, GenerationRefused, generation_admit
from pawa.generation.models import Generation
from pawa.generation.prompts import prompt_builder
from pawa.generation.redis import async_client
from pawa.llm.store import installed_models, model_store
from pawa.plans.quotas import quotas_for

log = logging.getLogger(__name__)
FINISH_REASONS = {"stop": "stop", "length": "length", "cancelled": "stop", "error": "stop"}


def model_object(card) -> dict:
    return {
        "id": card.name,
        "object": "model",
        "created": int(_timestamp(card.installed_at)),
        "owned_by": "pawa",
        # PAWA's model card, beyond OpenAI's fields.
        "display_name": card.display_name,
        "kind": card.kind,
        "languages": card.languages,
        "parameters": card.parameters,
        "context_length": card.context_length,
        "quantization": card.quantization,
        "license": card.license,
        "description": card.description,
    }


def _timestamp(iso: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


class ApiView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes: list = []
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return exception_handler

    def initialize_request(self, request, *args, **kwargs):
        request.processing_started = time.perf_counter()
        _read_chunked_body(request)
        # API clients read English unless they ask for Swahili: the site's default language
        # (and its cookie) is for people, not programs.
        request.previous_language = translation.get_language()
        translation.activate(_api_language(request.META.get("HTTP_ACCEPT_LANGUAGE", "")))
        request.LANGUAGE_CODE = translation.get_language()
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticates: 401 before anything counts
        if getattr(request.user, "approval_pending", False):
            raise ApiError(403, str(_("Your account is waiting for an administrator's approval. You can chat and use "
                                      "the API once it is approved.")),
                           type="permission_error", code="approval_pending")
        request.ratelimit_headers = limits.plan_tightened_headers(
            limits.check_and_count_request(request.auth, request.user), request.user,
            generates=isinstance(self, GenerationView))

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in getattr(request, "ratelimit_headers", {}).items():
            response.setdefault(name, value)
        # Time to the response head (for a stream: to its first byte), as OpenAI reports it.
        started = getattr(request, "processing_started", None) or getattr(request._request, "processing_started",
                                                                           None)
        if started is not None:
            response.setdefault("openai-processing-ms", str(round((time.perf_counter() - started) * 1000)))
        response.setdefault("Content-Language", translation.get_language() or "en")
        previous = getattr(request._request, "previous_language", None)
        if previous:  # the site's language again for whatever this thread serves next
            translation.activate(previous)
        return response


def _api_language(accept_language: str) -> str:
    """"sw" when the header's most wanted language is Swahili ("sw-TZ,en;q=0.8"), else "en"."""
    ranked = []
    for index, item in enumerate(accept_language.split(",")):
        name, _, quality = item.strip().partition(";q=")
        try:
            ranked.append((-float(quality or 1), index, name.strip()))
        except ValueError:
            continue
    ranked.sort()
    return "sw" if ranked and ranked[0][2].lower().split("-")[0] == "sw" else "en"


def _read_chunked_body(request) -> None:
    """A body sent with Transfer-Encoding: chunked has no Content-Length, and DRF reads such a
    body as empty. The ASGI server has already received it whole: give it its length."""
    if request.META.get("CONTENT_LENGTH") or "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    body = request.body
    if len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        from django.core.exceptions import RequestDataTooBig

        raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    request.META["CONTENT_LENGTH"] = str(len(body))


class ModelList(ApiView):
    @extend_schema(summary="List the installed models", tags=["Models"], operation_id="models_list",
                   responses={200: OpenApiResponse(description="{object: list, data: [model]}")})
    def get(self, request):
        """The installed models this key and the user's plan may use (a restricted key lists fewer)."""
        quotas = quotas_for(request.user)
        key_models = getattr(request.auth, "allowed_models", None) or ()
        usable = [card for card in installed_models()
                  if quotas.allows_model(card.name) and (not key_models or card.name in key_models)]
        return Response({"object": "list", "data": [model_object(card) for card in usable]})


class ModelDetail(ApiView):
    @extend_schema(summary="One installed model and its card", tags=["Models"], operation_id="models_retrieve",
                   responses={200: OpenApiResponse(description="A model"),
                              404: OpenApiResponse(description="model_not_found")})
    def get(self, request, model_id: str):
        try:
            card = model_store().get(model_id)
        except ModelNotFound:
            raise _model_not_found(model_id) from None
        return Response(model_object(card))


def _model_not_found(model: str) -> ApiError:
    return ApiError(404, f"The model '{model}' does not exist. GET /v1/models lists the installed models.",
                    param="model", code="model_not_found")


def _check_logit_bias(data: dict) -> None:
    """logit_bias names token ids of the model's vocabulary."""
    if not data.get("logit_bias"):
        return
    try:
        size = prompt_builder(data["model"]).tokenizer.get_vocab_size(with_added_tokens=True)
    except ModelNotFound:
        return  # the admission answers model_not_found
    outside = sorted(t for t in data["logit_bias"] if t >= size)
    if outside:
        raise invalid_request(f"logit_bias names token {outside[0]}, but this model's vocabulary has token ids "
                              f"0 to {size - 1}.", param="logit_bias")


def _sse(payload) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


# GenerationRefused codes → HTTP status. 429 and 503 carry Retry-After.
REFUSAL_STATUS = {
    "model_not_found": 404,
    "invalid_parameter": 400,
    "model_error": 400,
    "max_tokens_too_large": 400,
    "context_length_exceeded": 400,
    "concurrency_limit": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "approval_pending": 403,
    "model_not_allowed": 403,
    "queue_full": 503,
    "no_worker": 503,
    "queue_unavailable": 503,
}
# Error events of a generation that never started: the server could not serve it (503).
UNSTARTED_CODES = ("no_worker", "lost", "queue_timeout", "queue_unavailable")


# Refusals whose message quotes the engine's own (English) words.
ENGLISH_DETAIL_CODES = ("invalid_parameter", "model_error")


def refusal_error(refused: GenerationRefused) -> ApiError:
    """A refused admission in OpenAI's envelope, in the request's language (English unless the
    client asked for Swahili)."""
    status = REFUSAL_STATUS.get(refused.code, 400)
    if refused.code in ENGLISH_DETAIL_CODES:
        with translation.override("en"):  # a Swahili frame around the engine's English detail would mix them
            message = str(refused)
    else:
        message = str(refused)
    if refused.code == "model_not_found":
        message += " " + str(_("GET /v1/models lists the installed models."))
    error_type = {429: "requests", 503: "server_error", 403: "permission_error"}.get(status, "invalid_request_error")
    code = None if refused.code in ("invalid_parameter", "model_error") else refused.code
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else {}
    if refused.quota:  # a plan's quota: type says which kind, code which quota
        error_type, code = refused.code, refused.quota
        kind = "requests" if refused.quota == "requests_per_minute" else "tokens"
        headers.update({f"x-ratelimit-limit-{kind}": str(refused.values.get("limit", "")),
                        f"x-ratelimit-remaining-{kind}": "0", f"x-ratelimit-reset-{kind}": f"{refused.retry_after}s"})
    return ApiError(status, message, type=error_type, param=refused.param, code=code, headers=headers)


class GenerationView(ApiView):
    """Shared by /v1/chat/completions and /v1/completions."""

    input_class = None
    kind = Generation.Kind.CHAT
    endpoint = ""

    async def post(self, request):
        started = time.perf_counter()
        body = self.input_class(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        api_key, user = request.auth, request.user
        # Admission runs to its end even if the client leaves meanwhile (the view is then
        # cancelled): what it admitted is stopped and recorded, never left running unread.
        admit = asyncio.ensure_future(sync_to_async(self._admit)(body, user, api_key))
        try:
            admission = await asyncio.shield(admit)
        except ApiError as exc:
            await sync_to_async(_record)(api_key, user, None, self.endpoint, data.get("model", ""), exc.status_code,
                                         started, bool(data.get("stream")))
            raise
        except asyncio.CancelledError:
            try:
                admission = await admit
            except ApiError:
                raise asyncio.CancelledError from None
            context = self._context(admission, api_key, user, started, data, body)
            await sync_to_async(_abandon)(context, bool(data.get("stream")))
            raise
        context = self._context(admission, api_key, user, started, data, body)
        include_usage = context["include_usage"]
        if data.get("stream"):
            response = StreamingHttpResponse(self._stream(context, include_usage), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            # A client gone before the stream started never runs the stream's cleanup; Django
            # closes every response, so the close settles it.
            response._resource_closers.append(lambda: _abandon(context, True))
        else:
            response = Response(self.envelope(await self._complete(context)))
        return response

    def _context(self, admission: Admission, api_key, user, started: float, data, body) -> dict:
        return {"include_usage": bool((data.get("stream_options") or {}).get("include_usage")),
                "generation": admission.generation, "api_key": api_key, "user": user, "started": started,
                "endpoint": self.endpoint, "created": int(time.time()), "model": data["model"],
                "prompt_tokens": admission.prompt_tokens, "settled": False, **self.extra_context(body)}

    def _admit(self, body, user, api_key=None) -> Admission:
        """Admit through the one gate chat and API share (sync, in a thread)."""
        data = body.validated_data
        params = {**body.sampling(), "max_tokens": data.get("max_completion_tokens") or data.get("max_tokens")}
        _check_logit_bias(data)
        try:
            return generation_admit(
                user=user, model_name=data["model"], kind=self.kind, source=Generation.Source.API,
                prompt=self.prompt(data), params=params, trim=False, api_key=api_key,
            )
        except GenerationRefused as exc:
            raise refusal_error(exc) from None

    def prompt(self, data):
        """What the model reads: the messages (chat) or the text (completion)."""
        raise NotImplementedError

    def extra_context(self, body) -> dict:
        """What the response shapes need beyond the generation (a chat's tool call)."""
        return {}

    # Streaming ----------------------------------------------------------------------------

    def chunk(self, context, text: str | None, finish_reason: str | None, first: bool = False) -> dict:
        raise NotImplementedError

    def last_chunks(self, context, finish_reason: str) -> list[dict]:
        return [self.chunk(context, None, finish_reason)]

    def envelope(self, chunk: dict) -> dict:
        """A streamed chunk as this endpoint sends it (PAWA's own shape wraps OpenAI's)."""
        return chunk

    def completion(self, context, generation: Generation) -> dict:
        raise NotImplementedError

    async def _events(self, generation_id: str):
        client = async_client()
        # A generator's steps may run in different contexts: the id goes with each record.
        ids = {"generation_id": generation_id}
        log.info("relaying generation %s to an API client", generation_id, extra=ids)
        try:
            async for _entry_id, event in relay.follow(
                client, generation_id,
                on_idle=sync_to_async(lambda: generation_services.generation_idle_event(generation_id=generation_id)),
            ):
                if event["type"] in relay.FINAL_EVENTS:
                    log.info("relayed generation %s to its end (%s)", generation_id, event["type"], extra=ids)
                yield event
        finally:
            await client.aclose()

    async def _stream(self, context, include_usage: bool):
        generation = context["generation"]
        finished, recorded, status_code = False, False, 200
        try:
            yield _sse(self.envelope(self.chunk(context, "", None, first=True)))
            async for event in self._events(str(generation.id)):
                if event["type"] == "delta":
                    context["chunk_logprobs"] = event.get("logprobs")
                    chunk = self.chunk(context, event["text"], None)
                    if chunk is not None:  # None: held back until the answer is complete
                        yield _sse(self.envelope(chunk))
                elif event["type"] == "queued":
                    yield _queued_comment(event)
                elif event["type"] == "done":
                    finished = True
                    for chunk in self.last_chunks(context, FINISH_REASONS.get(event.get("finish_reason"), "stop")):
                        yield _sse(self.envelope(chunk))
                    if include_usage:
                        yield _sse(self.envelope({
                            **self._base(context, chunk=True), "choices": [],
                            "usage": _usage(event.get("prompt_tokens"), event.get("completion_tokens"))}))
                elif event["type"] == "error":
                    finished, status_code = True, _error_status(event)
                    yield _sse(error_body(event.get("message") or "The generation failed.", code=event.get("code")))
            # Usage is saved before [DONE]: a client that reads its usage page next finds it.
            await sync_to_async(_finish_usage)(context, status_code, True)
            recorded = True
            yield _sse("[DONE]")
        finally:
            if not finished:
                status_code = 499  # the client went away: free the worker
                await sync_to_async(generation_services.generation_cancel)(generation=generation)
            if not recorded:
                await sync_to_async(_finish_usage)(context, status_code, True)

    async def _complete(self, context) -> dict:
        generation = context["generation"]
        finished = False
        try:
            async for event in self._events(str(generation.id)):
                context.setdefault("logprobs", []).extend(event.get("logprobs") or [])
                if event["type"] in relay.FINAL_EVENTS:
                    finished = True
                    if event["type"] == "error":
                        status_code = _error_status(event)
                        await sync_to_async(_finish_usage)(context, status_code, False)
                        headers = {"Retry-After": "10"} if status_code == 503 else {}
                        raise ApiError(status_code, event.get("message") or "The generation failed.",
                                       type="server_error", code=event.get("code"), headers=headers)
        finally:
            if not finished:
                await sync_to_async(generation_services.generation_cancel)(generation=generation)
                await sync_to_async(_finish_usage)(context, 499, False)
        generation = await sync_to_async(Generation.objects.get)(pk=generation.pk)
        await sync_to_async(_finish_usage)(context, 200, False)
        return self.completion(context, generation)

    def _base(self, context, chunk: bool) -> dict:
        raise NotImplementedError


def _completion_logprobs(entries: list[dict] | None) -> dict | None:
    """The legacy completions shape of log-probabilities: parallel lists per token."""
    if not entries:
        return None
    offsets, offset = [], 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets}


def _null_usage(context) -> dict:
    """With stream_options.include_usage every chunk but the last says usage: null (OpenAI's shape)."""
    return {"usage": None} if context.get("include_usage") else {}


def _queued_comment(event: dict) -> str:
    """An SSE comment (clients ignore it) while the generation waits: position and estimated wait."""
    wait = event.get("wait_seconds")
    return f": queued, position {event['position']}" + (f", wait ~{wait} s" if wait else "") + "\n\n"


def _error_status(event: dict) -> int:
    return 503 if event.get("code") in UNSTARTED_CODES else 500


def _usage(prompt_tokens, completion_tokens) -> dict:
    prompt_tokens, completion_tokens = prompt_tokens or 0, completion_tokens or 0
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _record(api_key, user, generation, endpoint, model, status_code, started, streamed, prompt_tokens=0,
            completion_tokens=0) -> None:
    ApiUsage.objects.create(
        api_key=api_key, user=user, generation=generation, endpoint=endpoint, model_name=model,
        status_code=status_code, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        latency_ms=round((time.perf_counter() - started) * 1000, 1), streamed=streamed,
    )


def _abandon(context, streamed: bool) -> None:
    """The client left before its answer was delivered: stop it and record a 499, once."""
    if context.get("settled"):
        return
    generation_services.generation_cancel(generation=context["generation"])
    _finish_usage(context, 499, streamed)


def _finish_usage(context, status_code: int, streamed: bool) -> None:
    """Record the request's usage (once per request) and count its tokens."""
    if context.get("settled"):
        return
    context["settled"] = True
    generation = Generation.objects.filter(pk=context["generation"].pk).first()
    prompt_tokens = (generation.prompt_tokens if generation else None) or context["prompt_tokens"]
    completion_tokens = (generation.completion_tokens if generation else None) or 0
    _record(context["api_key"], context["user"], generation, context["endpoint"], context["model"], status_code,
            context["started"], streamed, prompt_tokens, completion_tokens)
    limits.count_tokens(context["api_key"], context["user"], prompt_tokens + completion_tokens)


def schema_instruction(schema: dict) -> str:
    """A guided answer is valid JSON whatever the model wants to say; telling the model the
    schema as well makes it say something sensible."""
    return ("Answer with one JSON value and nothing else. It must follow this JSON schema: "
            + json.dumps(schema, ensure_ascii=False))


def tools_instruction(tools: list[dict], forced: dict | None) -> str:
    listed = "\n".join(f"- {tool['name']}: {tool['description'] or 'no description'} Parameters (JSON schema): "
                       f"{json.dumps(tool['parameters'], ensure_ascii=False)}" for tool in tools)
    if forced and forced["name"]:
        return (f"You can call these functions:\n{listed}\nCall the function {forced['name']} now: answer with its "
                f"arguments as one JSON object and nothing else.")
    return (f"You can call these functions:\n{listed}\nTo call one, answer with only a JSON object "
            f'{{"name": <function name>, "arguments": {{...}}}}' + ("." if forced else "; otherwise answer normally."))


def with_instructions(messages: list[dict], instructions: list[str]) -> list[dict]:
    """The instructions join the system message (or become one)."""
    if not instructions:
        return messages
    instruction = "\n\n".join(instructions)
    if messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def render_tool_history(messages: list[dict]) -> list[dict]:
    """Tool calls and tool results in plain messages, for chat templates that know neither (the
    built-in models' do not): an assistant's calls become the JSON it would have written,
    {"tool_calls": [{"name", "arguments"}]}; tool results become one user message,
    "Tool result (call id): …", consecutive results joined."""
    rendered: list[dict] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            calls = [{"name": call["name"], "arguments": _json_or_text(call["arguments"])}
                     for call in message["tool_calls"]]
            text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            rendered.append({"role": "assistant", "content": f"{message['content']}\n{text}".lstrip()})
        elif message["role"] == "tool":
            result = f"Tool result ({message.get('tool_call_id') or 'call'}): {message['content']}"
            if rendered and rendered[-1].get("tool_results"):
                rendered[-1] = {**rendered[-1], "content": f"{rendered[-1]['content']}\n{result}"}
            else:
                rendered.append({"role": "user", "content": result, "tool_results": True})
        else:
            rendered.append({"role": message["role"], "content": message["content"]})
    return [{"role": m["role"], "content": m["content"]} for m in rendered]


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _call_id(context) -> str:
    return f"call_{context['generation'].id.hex[:24]}"


def _tool_call(context, text: str) -> dict | None:
    """The forced tool call in OpenAI's shape, from the guided answer (the arguments, or
    {"name", "arguments"} when the model chose the function); None if it does not parse (cut
    by max_tokens)."""
    name = context["tool_call"]["name"]
    if name:
        return _function_call(context, name, text)
    value = _json_or_text(text)
    if not isinstance(value, dict) or "name" not in value:
        return None
    return _function_call(context, value["name"], json.dumps(value.get("arguments", {}), ensure_ascii=False))


def _function_call(context, name: str, arguments: str) -> dict:
    return {"id": _call_id(context), "type": "function", "function": {"name": name, "arguments": arguments}}


def _auto_tool_call(context, text: str) -> dict | None:
    """tool_choice auto: an answer that is only {"name": a tool, "arguments": {…}} (in a code
    fence or not) is a tool call."""
    stripped = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    value = _json_or_text(stripped)
    if isinstance(value, dict) and value.get("name") in context["auto_tools"] and isinstance(
            value.get("arguments", {}), dict):
        return _function_call(context, value["name"], json.dumps(value.get("arguments", {}), ensure_ascii=False))
    return None


class ChatCompletions(GenerationView):
    input_class = ChatCompletionInput
    kind = Generation.Kind.CHAT
    endpoint = "chat.completions"

    @extend_schema(
        summary="Create a chat completion", tags=["Chat"], request=ChatCompletionInput,
        responses={200: OpenApiResponse(description="chat.completion, or an SSE stream of chat.completion.chunk "
                                                    "objects ending with data: [DONE] when stream is true")},
        examples=[OpenApiExample("Swahili", value={
            "model": "gemma3-270m", "messages": [{"role": "user", "content": "Habari! Mji mkuu wa Tanzania ni upi?"}],
            "temperature": 0.7, "stream": True})],
    )
    async def post(self, request):
        return await super().post(request)

    def prompt(self, data):
        messages = render_tool_history(data["messages"])
        instructions = []
        forced = data.get("forced_tool")
        tools = data.get("tools") or []
        choice = data.get("tool_choice_resolved")
        if tools and choice != "none":
            instructions.append(tools_instruction(tools, forced))
        if not forced and data.get("response_format") is not None:
            instructions.append(schema_instruction(data["response_format"]))
        return with_instructions(messages, instructions)

    def extra_context(self, body) -> dict:
        data = body.validated_data
        auto = [tool["name"] for tool in data.get("tools") or []] if data.get("tool_choice_resolved") == "auto" else []
        return {"tool_call": data.get("forced_tool"), "auto_tools": auto, "held": []}

    def _base(self, context, chunk: bool) -> dict:
        return {"id": f"chatcmpl-{context['generation'].id.hex}",
                "object": "chat.completion.chunk" if chunk else "chat.completion",
                "created": context["created"], "model": context["model"], "system_fingerprint": None}

    def _chunk(self, context, delta: dict, finish_reason) -> dict:
        entries = context.pop("chunk_logprobs", None) if "content" in delta else None
        logprobs = {"content": entries, "refusal": None} if entries else None
        return {**self._base(context, chunk=True),
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
                **_null_usage(context)}

    def chunk(self, context, text, finish_reason, first=False):
        forced = context.get("tool_call")
        if forced and forced["name"]:
            # A named function: its arguments stream as they are written, as OpenAI streams them.
            if first:
                return self._chunk(context, {"role": "assistant", "content": None, "tool_calls": [
                    {"index": 0, "id": _call_id(context), "type": "function",
                     "function": {"name": forced["name"], "arguments": ""}}]}, None)
            if text is not None:
                return self._chunk(context, {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}, None)
        elif forced and text is not None and not first:
            context["held"].append(text)  # the function's name comes inside the JSON: complete it first
            return None
        if first:
            return self._chunk(context, {"role": "assistant", "content": None if forced else ""}, None)
        return self._chunk(context, {"content": text} if text is not None else {}, finish_reason)

    def last_chunks(self, context, finish_reason):
        forced = context.get("tool_call")
        if not forced:
            return [self.chunk(context, None, finish_reason)]
        chunks = []
        if not forced["name"]:
            call = _tool_call(context, "".join(context["held"]))
            if call is None:
                chunks.append(self._chunk(context, {"content": "".join(context["held"])}, None))
            else:
                chunks.append(self._chunk(context, {"tool_calls": [{"index": 0, **call}]}, None))
        chunks.append(self._chunk(context, {}, "tool_calls" if finish_reason == "stop" else finish_reason))
        return chunks

    def completion(self, context, generation):
        finish = FINISH_REASONS.get(generation.finish_reason, "stop")
        message = {"role": "assistant", "content": generation.text, "refusal": None}
        call = None
        if context.get("tool_call"):
            call = _tool_call(context, generation.text)
        elif context.get("auto_tools") and finish == "stop":
            call = _auto_tool_call(context, generation.text)
        if call is not None:
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
            finish = "tool_calls" if finish == "stop" else finish
        logprobs = {"content": context.get("logprobs") or [], "refusal": None} if context.get("logprobs") else None
        return {**self._base(context, chunk=False),
                "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
                "usage": _usage(generation.prompt_tokens, generation.completion_tokens)}


class Completions(GenerationView):
    input_class = CompletionInput
    kind = Generation.Kind.COMPLETION
    endpoint = "completions"

    @extend_schema(
        summary="Create a text completion", tags=["Completions"], request=CompletionInput,
        responses={200: OpenApiResponse(description="text_completion, or an SSE stream of text_completion objects "
                                                    "ending with data: [DONE] when stream is true")},
        examples=[OpenApiExample("Continue a Swahili sentence", value={
            "model": "gemma3-270m", "prompt": "Tanzania ni nchi iliyoko", "max_tokens": 32})],
    )
    async def post(self, request):
        return await super().post(request)

    def prompt(self, data):
        return data["prompt"]

    def _base(self, context, chunk: bool) -> dict:
        return {"id": f"cmpl-{context['generation'].id.hex}", "object": "text_completion",
                "created": context["created"], "model": context["model"], "system_fingerprint": None}

    def chunk(self, context, text, finish_reason, first=False):
        entries = context.pop("chunk_logprobs", None)
        return {**self._base(context, chunk=True),
                "choices": [{"index": 0, "text": text or "", "logprobs": _completion_logprobs(entries),
                             "finish_reason": finish_reason}],
                **_null_usage(context)}

    def completion(self, context, generation):
        return {**self._base(context, chunk=False),
                "choices": [{"index": 0, "text": generation.text,
                             "logprobs": _completion_logprobs(context.get("logprobs")),
                             "finish_reason": FINISH_REASONS.get(generation.finish_reason, "stop")}],
                "usage": _usage(generation.prompt_tokens, generation.completion_tokens)}


class ChatRequest(ChatCompletions):
    """PAWA's hosted API shape, so clients written for it can use an on-prem PAWA: the same
    generation as /v1/chat/completions (same keys, limits, usage and parameters), with
    `memoryChat` (earlier turns) and the {"success", "message", "data"} envelope."""

    input_class = PawaChatRequestInput
    endpoint = "chat.request"

    @extend_schema(
        summary="Chat request (PAWA's hosted API shape)", tags=["Chat"], request=PawaChatRequestInput,
        responses={200: OpenApiResponse(description='{"success": true, "message": …, "data": {"request": '
                                                    '[{"finish_reason", "message"}], "created", "model", '
                                                    '"object": "chat.request", "usage"}}, or an SSE stream of '
                                                    'chat.request.chunk envelopes ending with data: [DONE]')},
        examples=[OpenApiExample("Swahili with memory", value={
            "model": "gemma3-270m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Na mji mkuu wake?"}]}],
            "memoryChat": [{"role": "user", "content": [{"type": "text", "text": "Tanzania iko wapi?"}]},
                           {"role": "assistant", "content": [{"type": "text", "text": "Afrika Mashariki."}]}],
            "temperature": 0.1, "max_tokens": 64})],
    )
    async def post(self, request):
        return await super().post(request)

    def get_exception_handler(self):
        def handler(exc, context):
            response = exception_handler(exc, context)
            if response is not None and isinstance(response.data, dict) and "error" in response.data:
                response.data = {"success": False, "message": response.data["error"]["message"],
                                 "error": response.data["error"]}
            return response

        return handler

    def envelope(self, payload: dict) -> dict:
        chunk = payload.get("object") == "chat.completion.chunk"
        data = {"request": [{"finish_reason": choice["finish_reason"],
                             ("delta" if chunk else "message"): choice["delta" if chunk else "message"],
                             **({"logprobs": choice["logprobs"]} if choice.get("logprobs") else {})}
                            for choice in payload.get("choices", [])],
                "created": payload["created"], "model": payload["model"],
                "object": "chat.request.chunk" if chunk else "chat.request", "id": payload["id"]}
        if "usage" in payload:
            data["usage"] = payload["usage"]
        message = "Chat request streaming" if chunk else "Chat request processed successfully"
        return {"success": True, "message": message, "data": data}
