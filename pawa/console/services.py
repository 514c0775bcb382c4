"""Console changes. Each one writes an `AdminAction` (who, what, when, target) in the same transaction."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from pawa.api.keys import apikey_revoke
from pawa.api.models import ApiKey, ApiLimits
from pawa.console.models import AdminAction
from pawa.plans.models import Plan

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month", "max_concurrent")


def admin_action_log(*, actor, action: str, target, details: dict | None = None) -> AdminAction:
    """Record one console change. `target` is any model instance (its type, id and text are kept)."""
    return AdminAction.objects.create(
        actor=actor, action=action, target_type=target._meta.model_name, target_id=str(target.pk),
        target=str(target)[:255], details=details or {},
    )


@transaction.atomic
def users_approve(*, actor, users) -> int:
    """Let pending users chat and call the API. Returns how many were pending."""
    count = 0
    for user in users:
        if user.approval_pending:
            get_user_model().objects.filter(pk=user.pk).update(approval_pending=False)
            admin_action_log(actor=actor, action=AdminAction.Kind.APPROVE, target=user)
            count += 1
    return count


@transaction.atomic
def users_set_active(*, actor, users, active: bool) -> int:
    """Deactivate or reactivate accounts (never the actor's own, and a superuser's only when
    the actor is a superuser too: staff cannot lock out the administrators above them). A
    deactivated user is signed out everywhere and their API keys stop working (the keys check
    `is_active`). Returns how many changed."""
    count = 0
    for user in users:
        if user.pk == actor.pk or user.is_active == active or (user.is_superuser and not actor.is_superuser):
            continue
        user.is_active = active
        user.save(update_fields=["is_active"])  # post_save closes their open chat sockets
        admin_action_log(actor=actor, action=AdminAction.Kind.REACTIVATE if active else AdminAction.Kind.DEACTIVATE,
                         target=user)
        count += 1
    return count


@transaction.atomic
def user_set_plan(*, actor, user, plan: Plan | None, limits: dict) -> None:
    """Give a user a plan (None: the default plan) and per-user overrides of its quotas
    (`limits`: LIMIT_FIELDS → int or None; None uses the plan's value)."""
    if user.plan_id != (plan.pk if plan else None):
        user.plan = plan
        user.save(update_fields=["plan"])
        admin_action_log(actor=actor, action=AdminAction.Kind.SET_PLAN, target=user,
                         details={"plan": plan.slug if plan else None})
    current = ApiLimits.objects.filter(user=user).first()
    before = {name: getattr(current, name, None) for name in LIMIT_FIELDS}
    after = {name: limits.get(name) for name in LIMIT_FIELDS}
    if before != after:
        ApiLimits.objects.update_or_create(user=user, defaults=after)
        admin_action_log(actor=actor, action=AdminAction.Kind.SET_LIMITS, target=user,
                         details={name: value for name, value in after.items() if value is not None})


@transaction.atomic
def plan_update(*, actor, plan: Plan, changed: list[str]) -> Plan:
    """Save a plan edited in the console; one plan at most is the default."""
    plan.save()
    if plan.is_default:
        Plan.objects.exclude(pk=plan.pk).update(is_default=False)
    admin_action_log(actor=actor, action=AdminAction.Kind.EDIT_PLAN, target=plan, details={"changed": changed})
    return plan


@transaction.atomic
def key_revoke(*, actor, key: ApiKey) -> ApiKey:
    apikey_revoke(key=key)
    admin_action_log(actor=actor, action=AdminAction.Kind.REVOKE_KEY, target=key,
                     details={"owner": key.user.email})
    return key


def conversation_remove(*, actor, conversation) -> None:
    """Delete a conversation (its answers being written are stopped); usage records stay."""
    from pawa.chat.services import conversation_delete

    with transaction.atomic():
        admin_action_log(actor=actor, action=AdminAction.Kind.DELETE_CONVERSATION, target=conversation,
                         details={"owner": conversation.user.email, "title": conversation.title})
        conversation_delete(conversation=conversation)
