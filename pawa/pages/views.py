from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import requires_csrf_token

from pawa.llm.quantization import quantization_example
from pawa.llm.store import installed_models

# The documentation: slug -> title. Each page is a template per language.
DOCS_PAGES = {
    "index": _("Documentation"),
    "getting-started": _("Getting started"),
    "api": _("Developer API"),
    "models": _("Models"),
    "quantization": _("Quantization"),
    "deploy": _("Deployment"),
}


def _docs_context(slug: str) -> dict:
    """Pages computed from the installed models."""
    if slug == "models":
        return {"models": installed_models()}
    if slug == "quantization":
        return {"quant": quantization_example(), "models": installed_models()}
    if slug == "api":
        return {"limits": {
            "requests_per_minute": settings.PAWA_API_REQUESTS_PER_MINUTE,
            "tokens_per_minute": settings.PAWA_API_TOKENS_PER_MINUTE,
            "max_concurrent": settings.PAWA_MAX_CONCURRENT_GENERATIONS,
        }}
    return {}


def home(request):
    return render(request, "pages/home.html")


def demo(request):
    """The "Try it" link: the chat, after signing in."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    # Say why the visitor lands on the login page instead of the chat.
    messages.info(request, _("Log in to try PAWA: the chat keeps your conversations in your own account. "
                             "No account yet? Sign up, it takes a minute."))
    return redirect(f"{reverse('account_login')}?next={reverse('chat:index')}")


def privacy(request):
    return render(request, "pages/privacy.html")


def docs_page(request, slug: str):
    if slug not in DOCS_PAGES:
        raise Http404
    language = (get_language() or "sw").split("-")[0]
    try:
        body = select_template([f"docs/{slug}.{language}.html", f"docs/{slug}.en.html"])
    except TemplateDoesNotExist as exc:
        raise Http404 from exc
    context = {"doc_title": DOCS_PAGES[slug], "doc_slug": slug, "doc_pages": DOCS_PAGES}
    context["doc_body"] = body.template.name
    context.update(_docs_context(slug))
    return render(request, "docs/page.html", context)


API_ERRORS = {
    400: ("The request could not be read (too large or malformed).", "invalid_request_error"),
    403: ("Forbidden.", "invalid_request_error"),
    404: ("Unknown API path.", "invalid_request_error"),
    500: ("Internal error.", "server_error"),
}


def _error(request, status: int, title, message):
    if request.path.startswith("/v1/"):
        # API clients get OpenAI's error envelope, not a page.
        api_message, kind = API_ERRORS[status]
        return JsonResponse({"error": {"message": api_message, "type": kind, "param": None, "code": None}},
                            status=status)
    return render(
        request, "error.html", {"status": status, "title": title, "message": message}, status=status
    )


@requires_csrf_token
def bad_request(request, exception=None):
    return _error(request, 400, _("Bad request"), _("The request could not be understood. Check what you sent and try again."))


@requires_csrf_token
def permission_denied(request, exception=None):
    return _error(request, 403, _("Access denied"), _("You do not have permission to open this page."))


@requires_csrf_token
def page_not_found(request, exception=None):
    return _error(request, 404, _("Page not found"), _("The page you asked for does not exist or was moved."))


@requires_csrf_token
def server_error(request):
    return _error(request, 500, _("Error"), _("Something went wrong on our side. Try again in a moment."))


def csrf_failure(request, reason=""):
    return _error(
        request,
        403,
        _("Form expired"),
        _("The security check for this form failed (missing or expired CSRF token). Reload the page and submit the form again."),
    )
