"""OpenAI's exact validation messages (CONTRACT §5), one constructor each, as the errors they raise."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import USER_ERROR, BadRequestError, NotFoundError


def quoted_list(values: Sequence[str]) -> str:
    """`'a'`, `'a' and 'b'`, `'a', 'b', and 'c'`: how OpenAI lists allowed values."""
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
        f"Invalid value: '{value}'. Supported values are: {quoted_list(allowed)}.",
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


def array_too_long(name: str, maximum: int, length: int) -> BadRequestError:
    return BadRequestError(
        f"Invalid '{name}': array too long. Expected an array with maximum length "
        f"{maximum}, but got an array with length {length} instead.",
        code="array_above_max_length",
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


def unsupported_mimetype(param: str, declared: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid file '{param}': unsupported mimetype ('{declared}'). "
        "Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
        code="unsupported_file_mimetype",
        param=param,
    )


def invalid_mask(why: str) -> BadRequestError:
    return BadRequestError(
        f"Invalid mask image format - {why}",
        code="invalid_mask_image_format",
        param="mask",
        type=USER_ERROR,
    )


def invalid_markup(why: str) -> BadRequestError:
    """A markup image that cannot guide an edit, in the words of the mask's messages."""
    return BadRequestError(
        f"Invalid markup image format - {why}.",
        code="invalid_markup_image_format",
        param="markup",
        type=USER_ERROR,
    )


def invalid_png_compression() -> BadRequestError:
    return BadRequestError(
        "Compression less than 100 is not supported for PNG output format",
        code="invalid_png_output_compression",
        param="output_compression",
        type=USER_ERROR,
    )


def invalid_input_image(why: str) -> BadRequestError:
    """DALL·E 2's checks of its one input image (format, squareness, transparency)."""
    return BadRequestError(f"Invalid input image - {why}", code="invalid_image_format", param="image")


def not_supported(model: str, name: str, why: str) -> BadRequestError:
    """A field the SDK sends that this model cannot honour: never an unknown parameter (CONTRACT §8)."""
    return BadRequestError(
        f"The model '{model}' does not support '{name}': {why}", code="invalid_value", param=name
    )


def cannot_combine(name: str, why: str) -> BadRequestError:
    """A field that is valid alone but not with the rest of the request."""
    return BadRequestError(f"Invalid '{name}': {why}", code="invalid_value", param=name)
