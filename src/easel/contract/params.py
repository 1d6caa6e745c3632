"""Typed request fields: coerce JSON values or multipart text, check limits, in OpenAI's words."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from . import messages

Kind = Literal["string", "integer", "number", "boolean", "object"]
_INT = re.compile(r"^[+-]?\d{1,20}$")
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
}


@dataclass(frozen=True)
class Param:
    """One scalar request field and its rules."""

    name: str
    kind: Kind
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    required: bool = False
    default: Any = None
    doc: str = ""
    #: An object's own fields, named here without the object's name (kind `object`).
    fields: tuple[Param, ...] = ()
    #: A further check of the typed value, in its turn (OpenAI's rule for free sizes).
    also: Callable[[Any], None] | None = field(default=None, compare=False)
    #: A JSON Schema pattern the value follows, for the OpenAPI document.
    pattern: str | None = None

    def json_schema(self) -> dict[str, Any]:
        """This field in JSON Schema, for easel's OpenAPI document."""
        schema: dict[str, Any] = {"type": self.kind}
        if self.kind == "object":
            schema["properties"] = {f.name: f.json_schema() for f in self.fields}
            schema["additionalProperties"] = False
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
            schema["minLength"] = 1
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.default is not None:
            schema["default"] = self.default
        if self.doc:
            schema["description"] = self.doc
        return schema


def type_name(value: object) -> str:
    """How OpenAI names a JSON value's type in `invalid_type` messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unknown type"


def coerce(param: Param, value: Any, *, from_form: bool) -> Any:
    """The typed value, or a 400 naming the field. Multipart values always arrive as text."""
    name, kind = param.name, param.kind
    bad = messages.invalid_type(name, _EXPECTED[kind], type_name(value))
    if kind == "object":
        if not isinstance(value, dict):
            raise bad
        inner = {f.name: replace(f, name=f"{name}.{f.name}") for f in param.fields}
        unknown = first_unknown(value, inner)
        if unknown is not None:
            raise messages.unknown_parameter(f"{name}.{unknown}")
        found = validate({f.name: f for f in inner.values()}, {f"{name}.{k}": v for k, v in value.items()},
                         from_form=from_form)  # fmt: skip
        return {k.removeprefix(f"{name}."): v for k, v in found.items() if v is not None}
    if kind == "string":
        if not isinstance(value, str):
            raise bad
        return value
    if from_form and isinstance(value, str):
        text = value.strip()
        if kind == "boolean":
            if text.lower() in ("true", "1"):
                return True
            if text.lower() in ("false", "0"):
                return False
            raise bad
        if kind == "integer":
            if not _INT.match(text):
                raise bad
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise bad from None
        if not math.isfinite(number):
            raise bad
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    if kind == "integer":
        if not isinstance(value, int):
            raise bad
        return value
    if not math.isfinite(value):
        raise bad
    return float(value)


def check(param: Param, value: Any) -> None:
    """Range, length and choice rules for an already-typed value."""
    name = param.name
    if isinstance(value, str):
        if param.max_length is not None:
            if value == "":
                raise messages.empty_string(name)
            if len(value) > param.max_length:
                raise messages.string_too_long(name, param.max_length, len(value))
        if param.choices is not None and value not in param.choices:
            raise messages.invalid_value(name, value, param.choices)
        if param.also is not None:
            param.also(value)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if param.maximum is not None and value > param.maximum:
        raise messages.out_of_range(name, value, param.maximum, above=True)
    if param.minimum is not None and value < param.minimum:
        raise messages.out_of_range(name, value, param.minimum, above=False)


def first_unknown(given: Iterable[str], known: Mapping[str, object]) -> str | None:
    for name in given:
        if name not in known:
            return name
    return None


def validate(params: Mapping[str, Param], raw: Mapping[str, Any], *, from_form: bool) -> dict[str, Any]:
    """Every field of `params` typed and checked, one at a time, in the table's order.

    JSON `null` means "not given". Unknown fields must be rejected before this is called.
    """
    out: dict[str, Any] = {}
    for name, param in params.items():
        value = raw.get(name)
        if value is None:
            if param.required:
                raise messages.missing_required(name)
            out[name] = param.default
            continue
        value = coerce(param, value, from_form=from_form)
        check(param, value)
        out[name] = value
    return out
