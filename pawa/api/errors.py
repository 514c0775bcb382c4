"""Errors in OpenAI's envelope: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status_code = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers or {}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def error_body(message: str, *, type: str = "server_error", code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _validation_message(detail, prefix: str = "") -> tuple[str, str | None]:
    """The first validation problem as (message, parameter path)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                path = prefix or None
            return _validation_message(value, path or "")
    if isinstance(detail, list) and detail:
        if all(isinstance(item, str) for item in detail):
            return str(detail[0]), prefix or None
        for index, item in enumerate(detail):
            if item:
                return _validation_message(item, f"{prefix}[{index}]")
    return str(detail), prefix or None


def exception_handler(exc, context):
    """Every error from the API views, in OpenAI's envelope."""
    if isinstance(exc, ApiError):
        return Response(exc.body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, exceptions.ValidationError):
        message, param = _validation_message(exc.detail)
        return Response(error_body(message, type="invalid_request_error", param=param), status=400)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return Response(
            error_body("Incorrect or missing API key. Send it as 'Authorization: Bearer pawa-…'.",
                       type="invalid_request_error", code="invalid_api_key"),
            status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body(f"Invalid JSON body: {exc.detail}", type="invalid_request_error"), status=400)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Response(error_body("Send the body as application/json.", type="invalid_request_error"), status=415)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body(str(exc.detail), type="invalid_request_error"), status=405)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(str(getattr(exc, "detail", exc)), type="invalid_request_error")
    return response
