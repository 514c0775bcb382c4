"""Every response carries an x-request-id (the client's own, when it sent a sane one), every
log record of the request carries it too (pawa/ops/logs.py), and every request is counted by
endpoint and status for /metrics (pawa/ops/metrics.py)."""

import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from pawa.ops import metrics
from pawa.ops.logs import set_request_id

access_log = logging.getLogger("pawa.access")

SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    @staticmethod
    def _id(request) -> str:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if SANE_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        set_request_id(request_id)
        return request_id

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        request.request_id = self._id(request)
        response = self.get_response(request)
        response["x-request-id"] = request.request_id
        return response

    async def _acall(self, request):
        request.request_id = self._id(request)
        response = await self.get_response(request)
        response["x-request-id"] = request.request_id
        return response


class RequestMetricsMiddleware:
    """Counts each HTTP request by endpoint (the URL pattern's name, never the raw path, so
    ids in paths do not make new series), method and response status, and writes the access
    log line (`pawa.access`: method, path without its query string, status, milliseconds to
    the response head), which carries the request id like every other record (the ASGI
    server's own access log is off: it cannot)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._record(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._record(request, response, started)
        return response

    @staticmethod
    def _record(request, response, started: float) -> None:
        metrics.http_request_count(request=request, status=response.status_code)
        access_log.info("%s %s %d %.0f ms", request.method, request.path, response.status_code,
                        (time.perf_counter() - started) * 1000)
