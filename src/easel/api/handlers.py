"""The one error renderer (APIError -> OpenAI's JSON envelope) and the app's exception handlers."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .. import errors


def render(error: errors.APIError, headers: Mapping[str, str] | None = None) -> Response:
    """Any APIError as OpenAI's JSON envelope with its status; its own headers beat `headers`."""
    return Response(
        error.content(),
        status_code=error.status,
        media_type="application/json",
        headers={**(headers or {}), **error.headers},
    )


def _request_headers(request: Request) -> Mapping[str, str]:
    """What every answer to this request carries (its rate limits, once it was admitted)."""
    call = getattr(request.state, "call", None)
    return call.headers if call is not None else {}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.APIError)
    return render(exc, _request_headers(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method) in OpenAI's words."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(exc.detail)
    return render(errors.for_status(exc.status_code, message))


async def _validation_error(_: Request, exc: Exception) -> Response:
    """FastAPI's validation of the admin routes' bodies and queries, as OpenAI's 400."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    message = f"Invalid request: {first.get('msg', 'invalid input')}."
    return render(errors.BadRequestError(message, param=where))


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.APIError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
