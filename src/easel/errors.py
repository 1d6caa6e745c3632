"""Every client-visible error, in OpenAI's status and type terms, and the stream's error payloads.

The tree (status, OpenAI `type`) and when each is raised::

    APIError                     500 server_error   the base: `envelope()` is OpenAI's error body
    ├── BadRequestError          400 invalid_request_error
    │   │                        a parameter, body, header or file is invalid (texts: contract.messages)
    │   └── ModerationBlockedError  400 image_generation_user_error
    │                            moderation refused the prompt (stage input) or an image (stage output)
    ├── AuthenticationError      401 invalid_request_error   the key is missing or wrong
    ├── PermissionDeniedError    403 invalid_request_error
    │                            the key may not do this (model, org, scope), or a URL signature is bad
    ├── NotFoundError            404 invalid_request_error   no such model, route, key or hosted image
    ├── MethodNotAllowedError    405 invalid_request_error   the route exists, not for this method
    ├── GoneError                410 invalid_request_error   a hosted image's URL has expired
    ├── RequestTooLargeError     413 invalid_request_error   the body is over `max_body_bytes`
    ├── RateLimitError           429 requests               a key's rpm or ipm is spent (retry headers)
    ├── ClientGoneError          499 invalid_request_error  the client hung up before its request was read
    ├── InsufficientQuotaError   429 insufficient_quota     a key's budget is spent (the SDKs must not retry)
    ├── InternalServerError      500 server_error           our bug: `internal()` names the request only
    │   └── GenerationFailedError   500 image_generation_server_error
    │                            a backend failed (out of memory, ...); its message is safe to show
    ├── BadGatewayError          502 server_error
    │                            an upstream images server could not be reached, or dropped its answer
    ├── ServiceUnavailableError  503 server_error
    │                            the queue is full, the server is draining, or a dependency is down
    ├── RequestTimeoutError      504 server_error           the request ran past its time limit
    ├── GatewayTimeoutError      504 server_error           an upstream images server did not answer in time
    ├── UpstreamError            any, as sent               an upstream's own error answer, relayed as sent
    └── OtherStatusError         any invalid_request_error  a status the framework chose itself

    ConfigError                  not HTTP: a configuration cannot be served; reported at start-up
    └── BackendConfigError       a model's backend, options or weights cannot be served

Rendering an APIError as an HTTP response is `easel.api.handlers`' job; a failure after a stream
has started becomes the `event: error` payload built by `stream_payload`. The few exceptions that
live elsewhere never reach a client as they are: the key store's KeyNotFoundError and the
ledger's StaleKeyError are turned into one of these by their callers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson

if TYPE_CHECKING:
    from .contract.responses import StreamError

INVALID_REQUEST = "invalid_request_error"
USER_ERROR = "image_generation_user_error"
STREAM_ERROR = "image_generation_server_error"


def retry_headers(seconds: float) -> dict[str, str]:
    """`retry-after` (whole seconds, at least 1) and `retry-after-ms`, which the SDKs obey."""
    ms = math.ceil(seconds * 1000)
    return {"retry-after": str(max(1, math.ceil(ms / 1000))), "retry-after-ms": str(ms)}


class APIError(Exception):
    """An error that becomes an OpenAI error envelope; named after the SDK's exception classes."""

    status = 500
    type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        if type is not None:
            self.type = type
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def envelope(self) -> dict[str, Any]:
        """The JSON body: all four keys always present, extra keys after them."""
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        body.update(self.extra)
        return {"error": body}

    def content(self) -> bytes:
        """The response body's bytes: the envelope as JSON."""
        return orjson.dumps(self.envelope())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole, whatever its constructor takes: a model replica's errors cross to the
        # ingress in the Ray mode.
        return _rebuilt, (type(self), self.__dict__)


class BadRequestError(APIError):
    status = 400
    type = INVALID_REQUEST


class ModerationBlockedError(BadRequestError):
    """CONTRACT §5's refusal, with `moderation_details` naming the stage and the categories."""

    type = USER_ERROR

    def __init__(self, categories: tuple[str, ...] | list[str], stage: str) -> None:
        super().__init__(
            "Your request was rejected by the safety system. If you believe this is an error, "
            "contact the operator of this server with the request ID.",
            code="moderation_blocked",
            extra={"moderation_details": {"moderation_stage": stage, "categories": list(categories)}},
        )


class AuthenticationError(APIError):
    status = 401
    type = INVALID_REQUEST


class PermissionDeniedError(APIError):
    status = 403
    type = INVALID_REQUEST


class NotFoundError(APIError):
    status = 404
    type = INVALID_REQUEST


class MethodNotAllowedError(APIError):
    status = 405
    type = INVALID_REQUEST


class GoneError(APIError):
    status = 410
    type = INVALID_REQUEST


class RequestTooLargeError(APIError):
    status = 413
    type = INVALID_REQUEST


class RateLimitError(APIError):
    status = 429
    type = "requests"


class ClientGoneError(APIError):
    """The client closed the connection while sending its request: nobody reads this answer, and
    it is the client's doing, neither our error nor a 5xx."""

    status = 499
    type = INVALID_REQUEST

    def __init__(self) -> None:
        super().__init__("The client closed the connection before its request was read.")


class InsufficientQuotaError(APIError):
    """A spent budget: waiting seconds won't help, so the SDKs are told not to retry."""

    status = 429
    type = "insufficient_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="insufficient_quota", headers={"x-should-retry": "false"})


class InternalServerError(APIError):
    status = 500
    type = "server_error"


class GenerationFailedError(InternalServerError):
    """A backend failed while rendering; the message is safe to show to the client."""

    type = STREAM_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message, code="image_generation_failed")


class ServiceUnavailableError(APIError):
    status = 503
    type = "server_error"


class RequestTimeoutError(APIError):
    """The request ran past the server's time limit; retrying it would only run out again."""

    status = 504
    type = "server_error"

    def __init__(self, limit: float) -> None:
        super().__init__(
            f"The request did not finish within the server's time limit of {limit:g} seconds.",
            code="timeout",
            headers={"x-should-retry": "false"},
        )


class BadGatewayError(APIError):
    """An upstream images server could not be reached (nothing was sent: retryable), or its answer
    was cut off after the request reached it (it may have been billed: `x-should-retry: false`)."""

    status = 502
    type = "server_error"


class GatewayTimeoutError(APIError):
    """An upstream images server took the request and did not answer in time; it may have done the
    work and billed it, so the SDKs are told not to retry."""

    status = 504
    type = "server_error"


class UpstreamError(APIError):
    """An upstream's own error answer: its status and its body's bytes are passed on as they came,
    and `envelope()` is the body as parsed (for a stream's `event: error` and the logs)."""

    def __init__(
        self, status: int, raw: bytes, envelope: Mapping[str, Any], headers: Mapping[str, str]
    ) -> None:
        error = envelope.get("error")
        detail: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
        super().__init__(
            str(detail.get("message") or ""),
            code=detail.get("code"),
            param=detail.get("param"),
            type=str(detail.get("type") or "server_error"),
            headers=headers,
            extra={k: v for k, v in detail.items() if k not in ("message", "type", "param", "code")},
        )
        self.status = status
        self.raw = raw

    def content(self) -> bytes:
        return self.raw


def _rebuilt(cls: type[APIError], state: dict[str, Any]) -> APIError:
    error = cls.__new__(cls)
    Exception.__init__(error, state["message"])
    error.__dict__.update(state)
    return error


def overloaded(message: str, retry_after: float) -> ServiceUnavailableError:
    """503 `server_overloaded`: the queue is full or the server is draining; come back later."""
    return ServiceUnavailableError(message, code="server_overloaded", headers=retry_headers(retry_after))


def unavailable(what: str) -> ServiceUnavailableError:
    """503 for a dependency that did not answer (the rate-limit store, the moderation upstream)."""
    return ServiceUnavailableError(f"{what}; please retry shortly.", headers=retry_headers(1.0))


#: HTTP statuses the framework itself may answer with, as the class that carries each.
BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    410: GoneError,
    413: RequestTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


class OtherStatusError(APIError):
    """A status the web framework answered with itself that no class above carries."""

    type = INVALID_REQUEST

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def for_status(status: int, message: str) -> APIError:
    """An error carrying `status`: its class above, else an OtherStatusError."""
    cls = BY_STATUS.get(status)
    return cls(message) if cls is not None else OtherStatusError(status, message)


def internal(request_id: str) -> InternalServerError:
    """The generic 500: says nothing of the cause (that goes to the log) but names the request."""
    return InternalServerError(
        "The server had an error while processing your request. Sorry about that! "
        f"You can retry your request, or contact us if the error persists. "
        f"(Please include the request ID {request_id} in your message.)"
    )


#: 5xx errors whose message is safe to show a client (they name no path, key or address of ours).
SAFE_TO_SHOW = (
    GenerationFailedError,
    ServiceUnavailableError,
    BadGatewayError,
    GatewayTimeoutError,
    UpstreamError,
)


def stream_payload(exc: BaseException, request_id: str) -> StreamError:
    """The `event: error` data for a failure after the stream started (CONTRACT §4).

    A client error keeps its type, code and details; a backend failure its safe message; any
    other failure is our bug and says only which request it was.
    """
    error: dict[str, Any]
    if isinstance(exc, APIError) and (exc.status < 500 or isinstance(exc, SAFE_TO_SHOW)):
        error = {"type": exc.type, "code": exc.code, "message": exc.message, "param": None, **exc.extra}
    else:
        message = (
            f"The image could not be generated. (Please include the request ID {request_id} in your message.)"
        )
        error = {"type": STREAM_ERROR, "code": "image_generation_failed", "message": message, "param": None}
    payload: Any = {"type": "error", "error": error}  # ErrorDetail, with any extra keys after its four
    return cast("StreamError", payload)


class ConfigError(Exception):
    """A configuration cannot be served; reported at start-up, before anything binds."""


class BackendConfigError(ConfigError, ValueError):
    """A model's backend, its options or its weights cannot be served."""
