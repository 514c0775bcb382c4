"""Health endpoints for load balancers and orchestrators."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from pawa.ops import health


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = health.run_checks()
    missing = [name for name, ok in checks.items() if not ok]
    return JsonResponse(
        {"status": "ok" if not missing else "unavailable", "checks": checks, "missing": missing},
        status=200 if not missing else 503,
    )
