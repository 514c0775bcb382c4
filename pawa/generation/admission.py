"""The one gate every generation passes: the chat and the API both call `generation_admit`.

It decides, in this order, and refuses with a `GenerationRefused` carrying a stable code:
the user is approved (`approval_pending`); the model is installed (`model_not_found`); the
user's plan and the API key allow it (`model_not_allowed`); the sampling parameters are valid
(`invalid_parameter`); `max_tokens` is at most the model's context (`max_tokens_too_large`);
the prompt fits the context, leaving old chat turns out only where the caller allows it
(`context_length_exceeded`); a worker is alive (`no_worker`); the queue has room
(`queue_full`); the user has a free slot (`concurrency_limit`) and quota left on their plan
(`rate_limit_exceeded` for requests or tokens per minute, `insufficient_quota` for tokens per
day or month; `quota` names which), all counted and taken atomically under the user's lock.
Then it saves the generation and enqueues it when the transaction commits; a broker that cannot
take the task turns into `queue_unavailable` and the generation is marked as failed.

The rules it applies in one place:
- Sampling defaults (`SAMPLING_DEFAULTS`) are the engine's, for the chat and the API alike.
- `max_tokens`: by default min(512, context / 2); an explicit value above the model's context
  is refused; whatever is asked is clamped to the room the prompt leaves in the context.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inference.engine import SamplingParams
from inference.errors import InvalidParameter, ModelError, PromptTooLong
from inference.registry import ModelNotFound
from pawa.generation.models import Generation
from pawa.generation.prompts import prompt_builder
from pawa.generation.workers import workers_alive
from pawa.plans.quotas import Exceeded, quota_exceeded, quotas_for

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
# temperature, top_p, top_k, repetition_penalty: what a generation uses when nobody chose.
SAMPLING_DEFAULTS: dict = {
    name: value for name, value in asdict(SamplingParams()).items()
    if name in ("temperature", "top_p", "top_k", "repetition_penalty")
}


class GenerationRefused(Exception):
    """A generation was not admitted. `code` is stable (clients and tests match on it);
    `str(exc)` is the message for people, in the language active when it is read.

    `param` names the request field at fault, `retry_after` (seconds) says when trying again
    may succeed; both may be None. A quota refusal also carries `quota` (its name, e.g.
    "tokens_per_day") and `resets_at` (an aware datetime).
    """

    def __init__(self, code: str, message, *, param: str | None = None, retry_after: int | None = None,
                 quota: str | None = None, resets_at=None, **values):
        super().__init__(code)
        self.code = code
        self.message = message
        self.values = values
        self.param = param
        self.retry_after = retry_after
        self.quota = quota
        self.resets_at = resets_at

    def __str__(self) -> str:
        return str(self.message) % self.values if self.values else str(self.message)


@dataclass(frozen=True)
class Admission:
    generation: Generation
    prompt_tokens: int
    max_tokens: int
    # Chat messages left out of the prompt because the conversation did not fit (trim=True).
    dropped_messages: int = 0


def default_max_tokens(context_length: int) -> int:
    """The answer length when none is asked: 512 tokens or half the context, whichever is less."""
    return max(1, min(DEFAULT_MAX_TOKENS, context_length // 2))


def max_concurrent_for(user) -> int:
    """Generations one user may have queued or running at once: their own limit (set by an
    admin, `ApiLimits.max_concurrent`), else their plan's, else PAWA_MAX_CONCURRENT_GENERATIONS."""
    return quotas_for(user).max_concurrent


QUOTA_MESSAGES = {
    "requests_per_minute": _("Your plan allows %(limit)s requests per minute and they are used up. It resets at "
                             "%(resets)s."),
    "tokens_per_minute": _("Your plan allows %(limit)s tokens per minute and they are used up. It resets at "
                           "%(resets)s."),
    "tokens_per_day": _("Your plan's %(limit)s tokens for today are used up. It resets at %(resets)s."),
    "tokens_per_month": _("Your plan's %(limit)s tokens for this month are used up. It resets at %(resets)s."),
}


def quota_refusal(exceeded: Exceeded) -> GenerationRefused:
    """A used-up quota as a refusal whose message names the quota and when it resets."""
    resets = timezone.localtime(exceeded.resets_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return GenerationRefused(
        exceeded.category, QUOTA_MESSAGES[exceeded.name], retry_after=exceeded.retry_after, quota=exceeded.name,
        resets_at=exceeded.resets_at, limit=exceeded.limit, resets=resets,
    )


def _check_user(user, model_name: str, api_key, quotas) -> None:
    """Approval, and the models the user's plan and the API key allow."""
    if getattr(user, "approval_pending", False):
        raise GenerationRefused(
            "approval_pending",
            _("Your account is waiting for an administrator's approval. You can chat and use the API once it "
              "is approved."),
        )
    if not quotas.allows_model(model_name):
        raise GenerationRefused("model_not_allowed", _("Your plan does not include the model “%(name)s”."),
                                param="model", name=model_name)
    allowed = getattr(api_key, "allowed_models", None)
    if allowed and model_name not in allowed:
        raise GenerationRefused("model_not_allowed", _("This API key may not use the model “%(name)s”."),
                                param="model", name=model_name)


def generation_admit(
    *, user, model_name: str, kind: str, source: str, prompt, params: dict, trim: bool = False, api_key=None,
) -> Admission:
    """Check a request against the model and every limit, then queue its generation.

    `prompt`: the chat messages ([{"role", "content"}], system message first if any) for
    kind=chat, the text for kind=completion. `params`: temperature, top_p, top_k,
    repetition_penalty, max_tokens, stop, seed, suppress_tokens (token ids), logprobs; a
    missing or None value takes the default. Other keys (the API's json_schema) are kept in
    the saved params for the worker.
    `trim` lets a chat that does not fit lose its oldest turns (the chat page); without it such
    a chat is refused (the API). The saved generation holds the messages actually kept and
    complete params, with max_tokens already clamped to the room left beside the prompt.
    `api_key` (API requests): its model allow-list applies too.

    Call it inside the caller's transaction if it writes more rows (the chat's message): the
    task is enqueued when the outermost transaction commits. Raises GenerationRefused (see the
    module docstring for the codes); `queue_unavailable` is raised at that commit.
    """
    quotas = quotas_for(user)
    _check_user(user, model_name, api_key, quotas)
    try:
        builder = prompt_builder(model_name)
    except ModelNotFound:
        raise GenerationRefused("model_not_found", _("The model “%(name)s” is not installed."),
                                param="model", name=model_name) from None
    context_length = builder.context_length
    requested = params.get("max_tokens")
    if requested is not None and requested > context_length:
        raise GenerationRefused(
            "max_tokens_too_large",
            _("max_tokens is %(requested)d, but this model holds at most %(context)d tokens, prompt and "
              "answer together."),
            param="max_tokens", requested=requested, context=context_length,
        )
    wanted = default_max_tokens(context_length) if requested is None else requested
    sampling = {**SAMPLING_DEFAULTS, **{name: value for name, value in params.items() if value is not None}}
    sampling["stop"] = list(sampling.get("stop") or [])
    sampling.setdefault("seed", None)
    sampling["max_tokens"] = wanted
    try:
        _sampling_params(sampling).validate()
        if kind == Generation.Kind.CHAT:
            built = builder.chat_prompt(prompt, max_tokens=wanted, trim=trim)
            kept = _kept_messages(prompt, built.dropped_messages)
        else:
            built = builder.text_prompt(prompt)
            kept = {"prompt": prompt}
    except PromptTooLong as exc:
        raise GenerationRefused(
            "context_length_exceeded",
            _("This model reads at most %(context)d tokens, prompt and answer together; this prompt has "
              "%(tokens)d. Make it shorter."),
            param="messages" if kind == Generation.Kind.CHAT else "prompt",
            context=exc.context_length, tokens=exc.prompt_tokens,
        ) from None
    except InvalidParameter as exc:
        raise GenerationRefused("invalid_parameter", _("Invalid %(field)s: %(detail)s"), param=exc.param,
                                field=exc.param, detail=str(exc)) from None
    except ModelError as exc:
        raise GenerationRefused("model_error", _("The model cannot be used: %(detail)s"), detail=str(exc)) from None
    sampling["max_tokens"] = max(1, min(wanted, context_length - built.length))

    _check_capacity()
    generation = _create(user=user, model_name=model_name, kind=kind, source=source, prompt=kept,
                         params=sampling, prompt_tokens=built.length, quotas=quotas)
    return Admission(generation=generation, prompt_tokens=built.length, max_tokens=sampling["max_tokens"],
                     dropped_messages=built.dropped_messages)


def _sampling_params(params: dict) -> SamplingParams:
    return SamplingParams(
        temperature=float(params["temperature"]), top_p=float(params["top_p"]), top_k=int(params["top_k"]),
        repetition_penalty=float(params["repetition_penalty"]), max_tokens=int(params["max_tokens"]),
        seed=params.get("seed"), stop=tuple(params.get("stop") or ()),
        suppress_tokens=tuple(params.get("suppress_tokens") or ()),
        logprobs=params.get("logprobs"),
    )


def _kept_messages(messages: list[dict], dropped: int) -> list[dict]:
    """The messages the prompt kept: the system message, then all but the `dropped` oldest others."""
    if not dropped:
        return messages
    if messages and messages[0].get("role") == "system":
        return [messages[0], *messages[1 + dropped:]]
    return messages[dropped:]


def _check_capacity() -> None:
    """A live worker and room in the queue (cheap Redis reads, before any lock is taken)."""
    from pawa.generation.services import generation_queue_length

    if not workers_alive():
        raise GenerationRefused(
            "no_worker", _("No model worker is running, so no answer can be written now. Try again later."),
            retry_after=10,
        )
    if generation_queue_length() >= settings.PAWA_MAX_QUEUE:
        raise GenerationRefused(
            "queue_full", _("The server is busy: too many answers are waiting. Try again in a moment."),
            retry_after=5,
        )


def _create(*, user, model_name: str, kind: str, source: str, prompt, params: dict,
            prompt_tokens: int, quotas) -> Generation:
    """Count the user's active generations and plan usage, and insert the new one, under one lock.

    The new generation is saved with its prompt tokens, so that the next admission counts them
    against the token quotas at once.

    PostgreSQL: the user's row is locked (SELECT … FOR UPDATE) until the transaction ends.
    SQLite: every transaction begins IMMEDIATE (settings.py), so writers take turns.
    """
    from pawa.generation.services import generation_create

    limit = quotas.max_concurrent
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if Generation.objects.for_user(user).active().count() >= limit:
            raise GenerationRefused(
                "concurrency_limit",
                _("You already have %(count)d answers being written. Wait for one to finish."),
                retry_after=1, count=limit,
            )
        exceeded = quota_exceeded(user=user, quotas=quotas)
        if exceeded is not None:
            raise quota_refusal(exceeded)
        generation = generation_create(user=user, model_name=model_name, prompt=prompt, params=params, kind=kind,
                                       source=source)
        generation.prompt_tokens = prompt_tokens
        generation.save(update_fields=["prompt_tokens"])
        return generation
