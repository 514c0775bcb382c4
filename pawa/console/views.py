"""The admin console: staff-only pages of the product (anonymous → log in, others → 403)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import formats, timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from pawa.api.models import ApiKey, ApiLimits
from pawa.chat.models import Conversation
from pawa.console import charts, selectors, services
from pawa.console.forms import (
    BulkUsersForm,
    ConversationFilterForm,
    KeyFilterForm,
    PlanForm,
    UserFilterForm,
    UserPlanForm,
)
from pawa.console.models import AdminAction
from pawa.generation.models import Generation
from pawa.plans.models import Plan
from pawa.plans.quotas import quota_status, quotas_for

PAGE_SIZE = 50


def staff_required(view):
    """Anonymous visitors go to the login page; signed-in people who are not staff get 403."""

    @wraps(view)
    @login_required
    @never_cache
    def wrapped(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _filter_status(form) -> int:
    """400 for a filter form with errors (they are shown beside its fields), else 200."""
    return 400 if form.is_bound and not form.is_valid() else 200


def _user_ids(values: list[str]) -> list[int]:
    """The ids in a posted list that can be a user's primary key: ASCII digits, at most 18 of
    them (larger ones overflow a database integer); anything else is dropped."""
    return [int(value) for value in values if value.isascii() and value.isdigit() and len(value) <= 18]


def _day(day) -> str:
    return formats.date_format(day, "j M")


@staff_required
def overview(request):
    data = selectors.chart_data()
    usage, speed = data["usage"], data["speed"]
    labels = [_day(day) for day in usage["days"]]
    web, api = _("Chat"), _("API")
    ttft_series, tps_series = [], []
    for model, series in speed["models"].items():
        ttft_series += [(f"{model} p50", series["ttft_p50"]), (f"{model} p95", series["ttft_p95"])]
        tps_series.append((model, series["tps"]))
    return render(request, "console/overview.html", {
        "active": "overview",
        "live": selectors.live_state(),
        "today": selectors.today_totals(),
        "tokens_chart": charts.line_chart(labels=labels, title=_("Tokens per day"), series=[
            (web, usage["tokens"]["web"]), (api, usage["tokens"]["api"])]),
        "requests_chart": charts.line_chart(labels=labels, title=_("Requests per day"), series=[
            (web, usage["requests"]["web"]), (api, usage["requests"]["api"])]),
        "ttft_chart": charts.line_chart(labels=labels, title=_("Time to first token (ms)"), series=ttft_series),
        "tps_chart": charts.line_chart(labels=labels, title=_("Tokens per second"), series=tps_series),
        "top_users_chart": charts.bar_chart(items=data["top_users"], title=_("Top users by tokens (30 days)")),
        "has_speed": bool(speed["models"]),
    })


def _filtered_users(form):
    users = selectors.users_with_usage()
    if not form.is_valid():
        return users.order_by("-date_joined")
    data = form.cleaned_data
    if data["q"]:
        users = users.filter(Q(email__icontains=data["q"]) | Q(username__icontains=data["q"]))
    state = data["state"]
    if state == "active":
        users = users.filter(is_active=True)
    elif state == "inactive":
        users = users.filter(is_active=False)
    elif state == "pending":
        users = users.filter(approval_pending=True)
    elif state == "staff":
        users = users.filter(is_staff=True)
    if data["joined_after"]:
        users = users.filter(date_joined__date__gte=data["joined_after"])
    if data["active_after"]:
        zone = timezone.get_current_timezone()
        users = users.filter(last_active__gte=datetime.combine(data["active_after"], time.min, tzinfo=zone))
    if data["min_tokens"] is not None:
        users = users.filter(tokens_used__gte=data["min_tokens"])
    order = data["order"] or "-date_joined"
    if order == "-last_active":  # never active: last, on every database
        return users.order_by(F("last_active").desc(nulls_last=True), "-id")
    return users.order_by(order, "-id")


@staff_required
def users(request):
    form = UserFilterForm(request.GET or None)
    page = _page(request, _filtered_users(form))
    return render(request, "console/users.html", {
        "active": "users", "form": form, "page": page, "query": _query_without_page(request),
        "bulk_actions": BulkUsersForm.ACTIONS,
    }, status=_filter_status(form))


@staff_required
@require_POST
def users_bulk(request):
    form = BulkUsersForm(request.POST, user_ids=_user_ids(request.POST.getlist("users")))
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("console:users")
    chosen = list(get_user_model().objects.filter(pk__in=form.cleaned_data["users"]))
    action = form.cleaned_data["action"]
    if action == "approve":
        count = services.users_approve(actor=request.user, users=chosen)
        text = ngettext("Approved %(count)d user.", "Approved %(count)d users.", count)
    elif action == "reactivate":
        count = services.users_set_active(actor=request.user, users=chosen, active=True)
        text = ngettext("Reactivated %(count)d user.", "Reactivated %(count)d users.", count)
    else:
        count = services.users_set_active(actor=request.user, users=chosen, active=False)
        text = ngettext("Deactivated %(count)d user.", "Deactivated %(count)d users.", count)
    messages.success(request, text % {"count": count})
    return redirect(request.POST.get("next") if str(request.POST.get("next", "")).startswith("/console/")
                    else "console:users")


@staff_required
def user_detail(request, user_id: int):
    person = get_object_or_404(get_user_model().objects.select_related("plan"), pk=user_id)
    limits = ApiLimits.objects.filter(user=person).first()
    initial = {"plan": person.plan}
    initial.update({name: getattr(limits, name, None) for name in services.LIMIT_FIELDS})
    form = UserPlanForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.user_set_plan(actor=request.user, user=person, plan=data["plan"],
                               limits={name: data[name] for name in services.LIMIT_FIELDS})
        messages.success(request, _("Saved."))
        return redirect("console:user", user_id=person.pk)
    generations = Generation.objects.filter(user=person)
    return render(request, "console/user.html", {
        "active": "users", "person": person, "form": form, "quotas": quotas_for(person),
        "quota_status": quota_status(person), "keys": ApiKey.objects.filter(user=person),
        "conversation_count": Conversation.objects.filter(user=person).count(),
        "generation_count": generations.count(),
        "actions": AdminAction.objects.filter(target_type="user", target_id=str(person.pk)).select_related("actor")[:20],
    }, status=400 if form.is_bound else 200)  # a valid POST has redirected


@staff_required
def plans(request):
    return render(request, "console/plans.html", {
        "active": "plans", "plans": Plan.objects.annotate(user_count=Count("users")),
    })


@staff_required
def plan_detail(request, plan_id: int | None = None):
    """Edit a plan, or create one (no plan_id)."""
    plan = get_object_or_404(Plan, pk=plan_id) if plan_id is not None else Plan(order=Plan.objects.count())
    form = PlanForm(request.POST or None, instance=plan)
    if request.method == "POST" and form.is_valid():
        plan = form.save(commit=False)
        if not plan.slug:
            plan.slug = plan_slug(plan.name)
        services.plan_update(actor=request.user, plan=plan, changed=form.changed_data)
        messages.success(request, _("The plan “%(name)s” is saved.") % {"name": plan.name})
        return redirect("console:plans")
    return render(request, "console/plan.html", {"active": "plans", "plan": plan, "form": form},
                  status=400 if form.is_bound else 200)  # a valid POST has redirected


def plan_slug(name: str) -> str:
    """A short name for a new plan from its name, unique among plans."""
    base = slugify(name)[:24] or "plan"
    slug, number = base, 1
    while Plan.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


@staff_required
def keys(request):
    form = KeyFilterForm(request.GET or None)
    found = ApiKey.objects.select_related("user")
    if form.is_valid():
        query, state = form.cleaned_data["q"].strip(), form.cleaned_data["state"]
        if query:
            found = found.filter(Q(prefix__istartswith=query) | Q(user__email__icontains=query)
                                 | Q(name__icontains=query))
        now = timezone.now()
        if state == "usable":
            found = found.usable()
        elif state == "revoked":
            found = found.filter(revoked_at__isnull=False)
        elif state == "expired":
            found = found.filter(revoked_at__isnull=True, expires_at__lte=now)
    return render(request, "console/keys.html", {
        "active": "keys", "form": form, "page": _page(request, found), "query": _query_without_page(request),
    }, status=_filter_status(form))


@staff_required
@require_POST
def key_revoke(request, key_id: int):
    key = get_object_or_404(ApiKey.objects.select_related("user"), pk=key_id)
    services.key_revoke(actor=request.user, key=key)
    messages.success(request, _("The key “%(name)s” is revoked.") % {"name": key.name})
    return redirect("console:keys")


@staff_required
def conversations(request):
    form = ConversationFilterForm(request.GET or None)
    found = Conversation.objects.select_related("user").annotate(message_count=Count("messages")).order_by(
        "-updated_at")
    if form.is_valid():
        data = form.cleaned_data
        if data["user"]:
            found = found.filter(Q(user__email__icontains=data["user"]) | Q(user__username__icontains=data["user"]))
        if data["model"]:
            found = found.filter(model_name__icontains=data["model"])
        zone = timezone.get_current_timezone()
        if data["since"]:
            found = found.filter(updated_at__gte=datetime.combine(data["since"], time.min, tzinfo=zone))
        if data["until"]:
            found = found.filter(created_at__lt=datetime.combine(data["until"] + timedelta(days=1), time.min,
                                                                 tzinfo=zone))
    return render(request, "console/conversations.html", {
        "active": "conversations", "form": form, "page": _page(request, found),
        "query": _query_without_page(request),
    }, status=_filter_status(form))


@staff_required
def conversation_detail(request, conversation_id: int):
    conversation = get_object_or_404(Conversation.objects.select_related("user"), pk=conversation_id)
    return render(request, "console/conversation.html", {
        "active": "conversations", "conversation": conversation,
        "messages_list": conversation.messages.select_related("generation").order_by("created_at", "id"),
    })


@staff_required
def conversation_delete(request, conversation_id: int):
    """GET asks for confirmation; POST deletes."""
    conversation = get_object_or_404(Conversation.objects.select_related("user"), pk=conversation_id)
    if request.method == "POST":
        services.conversation_remove(actor=request.user, conversation=conversation)
        messages.success(request, _("The conversation is deleted."))
        return redirect("console:conversations")
    return render(request, "console/conversation_delete.html", {
        "active": "conversations", "conversation": conversation})


@staff_required
def log(request):
    return render(request, "console/log.html", {
        "active": "log", "page": _page(request, AdminAction.objects.select_related("actor")),
    })
