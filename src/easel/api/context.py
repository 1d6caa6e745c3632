"""ASGI middleware: a request id and OpenAI's headers on every response, and the 500 for our bugs."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import errors, logs
from .handlers import render

log = logging.getLogger("easel.http")
access = logging.getLogger("easel.access")
#: Probes and scrapes: answered, counted nowhere, not logged.
QUIET = frozenset({"/health", "/ready", "/metrics"})
OPENAI_VERSION = "2020-10-01"
IMAGES = "/v1/images/"
#: What `easel_requests_total` labels: the three operations, nothing a client can invent.
OPERATIONS = frozenset({"generations", "edits", "variations"})


#: The header that names the replica which answered (which one served a URL, or refused a key).
REPLICA_HEADER = "x-easel-replica"


class RequestContext:
    """Adds `x-request-id`, `openai-processing-ms` and `openai-version` to every response.

    Behind a proxy that already names each request and sends `x-request-id` itself (Ray Serve's),
    the proxy's id is easel's too (`proxy_request_id`): the header is then sent once, by the proxy.
    A replica among several (the Ray mode's ingress) names itself in `x-easel-replica`.
    An exception that escapes the app is our bug: it is logged with the request id and the
    client gets the generic 500 envelope (with the same headers), never a traceback.
    """

    def __init__(self, app: ASGIApp, *, proxy_request_id: bool = False, replica: str | None = None) -> None:
        self.app = app
        self.proxy_request_id = proxy_request_id
        self.replica = replica

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id") if self.proxy_request_id else None
        request_id = given or f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = logs.request_id.set(request_id)
        start = time.perf_counter()
        started = False

        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if given is None:
                    headers["x-request-id"] = request_id
                if self.replica is not None:
                    headers[REPLICA_HEADER] = self.replica
                headers["openai-version"] = OPENAI_VERSION
                headers["openai-processing-ms"] = str(int((time.perf_counter() - start) * 1000))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
            _count(scope, status)
            _log(scope, status, start)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request id %s)", scope.get("method"), scope.get("path"), request_id
            )
            if started:
                raise
            response = render(errors.internal(request_id))
            await response(scope, receive, send_with_headers)
            _count(scope, 500)
            _log(scope, 500, start)
        finally:
            logs.request_id.reset(token)


def _log(scope: Scope, status: int, start: float) -> None:
    """The access line: who (a key id, never a key), what, how it ended; the prompt only if enabled."""
    path = scope.get("path", "")
    if path in QUIET:
        return
    state = scope.get("state", {})
    caller, call = state.get("caller"), state.get("call")
    services = getattr(scope["app"].state, "services", None)
    log_prompts = services is not None and services.settings.log_prompts
    access.info(
        "%s %s %d",
        scope.get("method"),
        path,
        status,
        extra={
            "request_id": state.get("request_id"),
            "status": status,
            "ms": round((time.perf_counter() - start) * 1000, 1),
            "key_id": getattr(caller, "key_id", None),
            "model": getattr(call, "model", None),
            "prompt": getattr(call, "prompt", None) if log_prompts else None,
        },
    )


def _count(scope: Scope, status: int) -> None:
    """One image API request (a POST to one of the three operations) in the metrics, by the
    model it named (if served) and status; a wrong method or path is no image request."""
    operation = scope.get("path", "").removeprefix(IMAGES)
    if (
        scope.get("method") != "POST"
        or not scope.get("path", "").startswith(IMAGES)
        or operation not in OPERATIONS
    ):
        return
    services = getattr(scope["app"].state, "services", None)
    if services is not None:
        model = getattr(scope.get("state", {}).get("call"), "model", None) or "none"
        services.metrics.requests.labels(model, operation, str(status)).inc()
