"""The APIError hierarchy and the one place that renders OpenAI's error envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

INVALID_REQUEST = "invalid_request_error"
USER_ERROR = "image_generation_user_error"


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


class BadRequestError(APIError):
    status = 400
    type = INVALID_REQUEST


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


class InternalServerError(APIError):
    status = 500
    type = "server_error"


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


class GenerationFailedError(InternalServerError):
    """A backend failed while rendering; the message is safe to show to the client."""

    type = "image_generation_server_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="image_generation_failed")


def render(error: APIError) -> Response:
    """Render any APIError as OpenAI's JSON envelope with its status and headers."""
    return Response(
        orjson.dumps(error.envelope()),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def internal(request_id: str) -> InternalServerError:
    """The generic 500: says nothing of the cause (that goes to the log) but names the request."""
    return InternalServerError(
        "The server had an error while processing your request. Sorry about that! "
        f"You can retry your request, or contact us if the error persists. "
        f"(Please include the request ID {request_id} in your message.)"
    )


# --- OpenAI's exact validation messages, one constructor each -------------------------------


def _quoted_list(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def unknown_parameter(name: str) -> BadRequestError:
    return BadRequestError(f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)


def missing_required(name: str) -> BadRequestError:
    return BadRequestError(
        f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
    )


def invalid_value(name: str, value: object, allowed: Sequence[str]) -> BadRequestError:
    return BadRequestError(
        f"Invalid value: '{value}'. Supported values are: {_quoted_list(allowed)}.",
        code="invalid_value",
        param=name,
    )


def value_must_be(name: str, value: object, allowed: Sequence[str]) -> BadRequestError:
    """OpenAI's wording when a whole endpoint is limited to some models."""
    options = " or ".join(f"'{a}'" for a in allowed)
    return BadRequestError(
        f"Invalid value: '{value}'. Value must be {options}.", code="invalid_value", param=name
    )


def invalid_type(name: str, expected: str, got: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid type for '{name}': expected {expected}, but got {got} instead.",
        code="invalid_type",
        param=name,
    )


def string_too_long(name: str, maximum: int, length: int) -> BadRequestError:
    return BadRequestError(
        f"Invalid '{name}': string too long. Expected a string with maximum length {maximum}, "
        f"but got a string with length {length} instead.",
        code="string_above_max_length",
        param=name,
    )


def empty_string(name: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid '{name}': empty string. Expected a string with minimum length 1, "
        "but got an empty string instead.",
        code="empty_string",
        param=name,
    )


def out_of_range(name: str, got: float, limit: float, *, above: bool) -> BadRequestError:
    """`integer_above_max_value` and its siblings, for integers and decimals alike."""
    kind, code = ("integer", "integer") if isinstance(got, int) else ("number", "decimal")
    side, op, end = ("above maximum", "<=", "above_max") if above else ("below minimum", ">=", "below_min")
    shown = int(limit) if kind == "integer" else limit
    return BadRequestError(
        f"Invalid '{name}': {kind} {side} value. Expected a value {op} {shown}, but got {got} instead.",
        code=f"{code}_{end}_value",
        param=name,
    )


def model_not_found(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def invalid_image(param: str, why: str) -> BadRequestError:
    return BadRequestError(f"Invalid file '{param}': {why}", code="invalid_image", param=param)


def image_too_large(param: str, why: str) -> BadRequestError:
    return BadRequestError(f"Invalid file '{param}': {why}", code="image_too_large", param=param)


def invalid_mask(why: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid mask image format - {why}",
        code="invalid_mask_image_format",
        param="mask",
        type=USER_ERROR,
    )
