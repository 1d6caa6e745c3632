"""ASGI middleware: a request id and OpenAI's headers on every response, and the 500 for our bugs."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import errors

log = logging.getLogger("easel.http")
OPENAI_VERSION = "2020-10-01"
IMAGES = "/v1/images/"


class RequestContext:
    """Adds `x-request-id`, `openai-processing-ms` and `openai-version` to every response.

    An exception that escapes the app is our bug: it is logged with the request id and the
    client gets the generic 500 envelope (with the same headers), never a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        started = False

        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                headers["openai-version"] = OPENAI_VERSION
                headers["openai-processing-ms"] = str(int((time.perf_counter() - start) * 1000))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
            _count(scope, status)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request id %s)", scope.get("method"), scope.get("path"), request_id
            )
            if started:
                raise
            response = errors.render(errors.internal(request_id))
            await response(scope, receive, send_with_headers)
            _count(scope, 500)


def _count(scope: Scope, status: int) -> None:
    """One image API request in the metrics, by the model it named (if served) and status."""
    path = scope.get("path", "")
    if not path.startswith(IMAGES):
        return
    services = getattr(scope["app"].state, "services", None)
    if services is not None:
        model = scope.get("state", {}).get("model", "none")
        services.metrics.requests.labels(model, path.removeprefix(IMAGES), str(status)).inc()
