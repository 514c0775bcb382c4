"""Every response carries an x-request-id (the client's own, when it sent a sane one)."""

import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

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
        return incoming if SANE_ID.match(incoming) else f"req_{uuid.uuid4().hex}"

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
