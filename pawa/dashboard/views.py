from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from pawa.api.keys import apikey_create, apikey_revoke
from pawa.api.limits import limits_for
from pawa.api.models import ApiKey, ApiUsage
from pawa.dashboard.forms import ApiKeyForm
from pawa.plans.quotas import quota_status, quotas_for

USAGE_DAYS = 30


@login_required
def dashboard(request):
    return render(request, "dashboard/index.html", {
        "key_count": ApiKey.objects.for_user(request.user).usable().count(),
        "requests_today": ApiUsage.objects.filter(user=request.user, created_at__date=timezone.localdate()).count(),
        "quotas": quotas_for(request.user), "quota_status": quota_status(request.user),
    })


@never_cache
@login_required
def api_keys(request):
    new_secret = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        expires = timezone.now() + timedelta(days=days) if days else None
        key, new_secret = apikey_create(user=request.user, name=form.cleaned_data["name"], expires_at=expires,
                                        allowed_models=form.cleaned_data["allowed_models"])
        form = ApiKeyForm()
    keys = ApiKey.objects.for_user(request.user)
    return render(request, "dashboard/keys.html", {
        "form": form, "keys": keys, "new_secret": new_secret, "limits": limits_for(request.user),
    })


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    key = ApiKey.objects.for_user(request.user).filter(pk=key_id).first()
    if key is None:
        raise Http404
    apikey_revoke(key=key)
    messages.success(request, _("The key “%(name)s” is revoked.") % {"name": key.name})
    return redirect("dashboard_keys")


@login_required
def usage(request):
    since = timezone.now() - timedelta(days=USAGE_DAYS)
    records = ApiUsage.objects.filter(user=request.user, created_at__gte=since)
    totals = {"requests": Count("id"), "prompt_tokens": Sum("prompt_tokens"), "completion_tokens": Sum("completion_tokens")}
    by_day = records.annotate(day=TruncDate("created_at")).values("day").annotate(**totals).order_by("-day")
    by_key = records.values("api_key__name", "api_key__prefix", "api_key__last4").annotate(**totals).order_by("-requests")
    by_model = records.values("model_name").annotate(**totals).order_by("-requests")
    return render(request, "dashboard/usage.html", {
        "by_day": by_day, "by_key": by_key, "by_model": by_model, "days": USAGE_DAYS,
        "recent": records.select_related("api_key")[:20],
    })
