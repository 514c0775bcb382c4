"""Staff console: adapt an installed model to a domain (/console/adapt/)."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from inference.adapt import EXTRA_HINT, DataError, extra_available
from pawa.adaptation.forms import AdaptationForm
from pawa.adaptation.models import Adaptation
from pawa.adaptation.services import AdaptationInvalid, adaptation_cancel, adaptation_create
from pawa.llm.store import installed_models

MAX_UPLOAD_BYTES = 5 * 2**20


def staff_member_required(view):
    """Staff only: people not signed in go to the login page, others get 403."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def phase_label(phase: str) -> str:
    return {
        "start": _("Starting"),
        "evaluate_base": _("Asking the base model the held-out questions"),
        "load": _("Loading the base model"),
        "train": _("Training"),
        "convert": _("Converting to int8 and installing"),
        "evaluate": _("Asking the new model the held-out questions"),
        "done": _("Done"),
    }.get(phase, phase)


def data_error_message(code: str, line: int | None = None, detail: str = "") -> str:
    """The translated sentence for an example file problem (DataError.code), naming the line."""
    problems = {
        "format": _("the file must be JSONL (.jsonl) or CSV (.csv)"),
        "too_large": _("the file is larger than 5 MiB"),
        "encoding": _("the file is not UTF-8 text"),
        "json": _("not a JSON object"),
        "fields": _('each line needs "messages", or "prompt" and "completion"'),
        "role": _('each message needs a role (system, user or assistant) and a text "content"'),
        "no_answer": _("the last message must be the assistant's answer"),
        "no_question": _("there is no user message before the answer"),
        "empty_text": _("a question or an answer is empty"),
        "not_text": _("a question or an answer is not text"),
        "too_long": _("a text is longer than 4000 characters"),
        "csv_header": _('the first line must be the header "question,answer"'),
        "csv_row": _("each line needs a question and an answer"),
        "empty": _("the file has no examples"),
        "too_many": _("the file has more than 5000 examples"),
        "too_few": _("too few examples: train on at least 2 and hold out at least 1"),
        "unreadable": _("the file cannot be read"),
    }
    problem = problems.get(code, detail or code)
    if line:
        return _("Line %(line)s: %(problem)s.") % {"line": line, "problem": problem}
    return _("The file: %(problem)s.") % {"problem": problem}


def error_message(adaptation: Adaptation) -> str:
    if adaptation.error_code == "model":
        return _("The model could not be adapted: %(detail)s") % {"detail": adaptation.error_detail}
    if adaptation.error_code == "interrupted":
        return _("The training stopped: its worker was restarted. Start it again.")
    if adaptation.error_code == "internal":
        return _("The training failed unexpectedly: %(detail)s") % {"detail": adaptation.error_detail}
    return data_error_message(adaptation.error_code, adaptation.error_line, adaptation.error_detail)


INVALID = {
    "base": lambda: _("Choose an installed model."),
    "name_invalid": lambda: _("Use lowercase letters, digits, dots, dashes and underscores (at most 64)."),
    "name_taken": lambda: _("A model or a training run already has this name."),
}


@never_cache
@staff_member_required
def adaptation_list(request):
    models = [card.name for card in installed_models() if (card.source or {}).get("type") != "adapted"]
    form = AdaptationForm(request.POST or None, request.FILES or None, models=models)
    extra = extra_available()
    status = 200
    if request.method == "POST" and extra and form.is_valid():
        data, holdout = form.cleaned_data["data"], form.cleaned_data["holdout"]
        too_large = [f for f in (data, holdout) if f and f.size > MAX_UPLOAD_BYTES]
        if too_large:
            form.add_error("data" if too_large[0] is data else "holdout", data_error_message("too_large"))
        else:
            try:
                adaptation = adaptation_create(
                    user=request.user, base_model=form.cleaned_data["base_model"], name=form.cleaned_data["name"],
                    data=data.read(), data_name=data.name,
                    holdout=holdout.read() if holdout else None, holdout_name=holdout.name if holdout else "",
                    holdout_fraction=form.cleaned_data["holdout_fraction"] or 0.0,
                    steps=form.cleaned_data["steps"], rank=form.cleaned_data["rank"],
                    learning_rate=form.cleaned_data["learning_rate"], retrieval=form.cleaned_data["retrieval"],
                )
            except AdaptationInvalid as exc:
                if exc.data_error is not None:
                    error: DataError = exc.data_error
                    form.add_error(exc.field, data_error_message(error.code, error.line, error.detail))
                else:
                    form.add_error(exc.field, INVALID[exc.code]())
            else:
                messages.success(request, _("The training is queued."))
                return redirect("adaptation_detail", adaptation_id=adaptation.pk)
    if request.method == "POST" and form.errors:
        status = 400
    return render(request, "adaptation/list.html", {
        "form": form, "extra": extra, "extra_hint": EXTRA_HINT,
        "adaptations": Adaptation.objects.all()[:50],
    }, status=status)


@never_cache
@staff_member_required
def adaptation_detail(request, adaptation_id: int):
    adaptation = get_object_or_404(Adaptation, pk=adaptation_id)
    results = adaptation.results or {}
    pairs = list(zip(results.get("before") or [], results.get("after") or []))
    return render(request, "adaptation/detail.html", {
        "adaptation": adaptation,
        "error": error_message(adaptation) if adaptation.status == Adaptation.Status.FAILED else "",
        "results": results, "pairs": pairs, "phase": phase_label(adaptation.phase),
        "before_pct": _percent(results.get("heldout_accuracy_before")),
        "after_pct": _percent(results.get("heldout_accuracy_after")),
    })


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


@staff_member_required
@require_POST
def adaptation_cancel_view(request, adaptation_id: int):
    adaptation = get_object_or_404(Adaptation, pk=adaptation_id)
    if adaptation_cancel(adaptation=adaptation):
        messages.info(request, _("The training stops before its next step."))
    return redirect("adaptation_detail", adaptation_id=adaptation.pk)
