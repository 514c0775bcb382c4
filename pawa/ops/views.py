"""Health endpoints for load balancers and orchestrators, and /metrics for Prometheus."""

import hmac
import ipaddress

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pawa.ops import health, metrics


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


def _client_network_allowed(request) -> bool:
    """Loopback (a request with no proxy header: one forwarded by a proxy is from whoever the
    proxy served) or an address inside PAWA_METRICS_ALLOW."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    forwarded = "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META
    if address.is_loopback and not forwarded:
        return True
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.PAWA_METRICS_ALLOW)


def _token_state(request) -> str:
    """'valid', 'wrong' (a bearer token that does not match, or none is configured) or 'absent'."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return "absent"
    scheme, _, token = header.partition(" ")
    configured = settings.PAWA_METRICS_TOKEN
    if scheme.lower() == "bearer" and configured and hmac.compare_digest(token.strip().encode(), configured.encode()):
        return "valid"
    return "wrong"


@never_cache
@require_GET
def metrics_view(request):
    """GET /metrics: Prometheus text format (pawa/ops/metrics.py).

    Answered to loopback clients, to addresses in PAWA_METRICS_ALLOW and to requests with
    "Authorization: Bearer <PAWA_METRICS_TOKEN>". A wrong token is 401; another network is 401
    when a token is configured (it could send one), else 403. 503 when Redis cannot be read.
    """
    token = _token_state(request)
    if token == "wrong" or (token == "absent" and not _client_network_allowed(request)):
        if token == "wrong" or settings.PAWA_METRICS_TOKEN:
            response = HttpResponse("Unauthorized: send Authorization: Bearer <PAWA_METRICS_TOKEN>\n", status=401,
                                    content_type="text/plain; charset=utf-8")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("Forbidden: /metrics answers loopback clients and PAWA_METRICS_ALLOW networks.\n",
                            status=403, content_type="text/plain; charset=utf-8")
    try:
        body = generate_latest(metrics.metrics_registry())
    except redis.RedisError:
        return HttpResponse("Redis cannot be reached.\n", status=503, content_type="text/plain; charset=utf-8")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
