"""Health endpoints for load balancers and orchestrators."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from pawa.ops import health


def _answer(checks: dict[str, bool]) -> JsonResponse:
    missing = [name for name, ok in checks.items() if not ok]
    return JsonResponse(
        {"status": "ok" if not missing else "unavailable", "checks": checks, "missing": missing},
        status=200 if not missing else 503,
    )


@never_cache
@require_GET
def healthz(request):
    """Liveness: 200 when this web process can serve (database, Redis, broker), else 503."""
    return _answer(health.liveness_checks())


@never_cache
@require_GET
def readyz(request):
    """Readiness: liveness and at least one registered model worker, else 503."""
    return _answer(health.run_checks())
