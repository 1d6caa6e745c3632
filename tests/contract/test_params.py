"""Field coercion and checks, in OpenAI's words."""

from __future__ import annotations

from typing import Any

import pytest

from easel import errors
from easel.contract.params import Param, coerce, validate

N = Param("n", "integer", minimum=1, maximum=10, default=1)
FLAG = Param("stream", "boolean", default=False)
SCALE = Param("guidance_scale", "number", minimum=0, maximum=30)
SIZE = Param("size", "string", choices=("1024x1024", "auto"))
PROMPT = Param("prompt", "string", max_length=5, required=True)


@pytest.mark.parametrize(
    ("param", "value", "form", "expected"),
    [
        (N, 3, False, 3),
        (N, "3", True, 3),
        (FLAG, True, False, True),
        (FLAG, "true", True, True),
        (FLAG, "False", True, False),
        (SCALE, 2, False, 2.0),
        (SCALE, "2.5", True, 2.5),
    ],
)
def test_coerce_accepts(param: Param, value: Any, form: bool, expected: Any) -> None:
    assert coerce(param, value, from_form=form) == expected


@pytest.mark.parametrize(
    ("param", "value", "form", "got"),
    [
        (N, "3", False, "a string"),
        (N, 2.0, False, "a decimal"),
        (N, True, False, "a boolean"),
        (N, "three", True, "a string"),
        (FLAG, "yes", True, "a string"),
        (FLAG, 1, False, "an integer"),
        (SIZE, 5, False, "an integer"),
        (SCALE, "nan", True, "a string"),
        (SCALE, [], False, "an array"),
        (PROMPT, {}, False, "an object"),
    ],
)
def test_coerce_rejects_with_openai_wording(param: Param, value: Any, form: bool, got: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        coerce(param, value, from_form=form)
    assert info.value.code == "invalid_type"
    assert info.value.message.endswith(f"but got {got} instead.")


def test_validate_order_defaults_and_nulls() -> None:
    table = {p.name: p for p in (PROMPT, N, SIZE)}
    assert validate(table, {"prompt": "hi", "n": None}, from_form=False) == {
        "prompt": "hi",
        "n": 1,
        "size": None,
    }
    with pytest.raises(errors.BadRequestError) as info:  # the first bad field is named
        validate(table, {"n": 99, "size": "bad"}, from_form=False)
    assert info.value.param == "prompt"
    with pytest.raises(errors.BadRequestError) as info:
        validate(table, {"prompt": "", "n": 99}, from_form=False)
    assert info.value.code == "empty_string"
    with pytest.raises(errors.BadRequestError) as info:
        validate(table, {"prompt": "ok", "n": 99, "size": "bad"}, from_form=False)
    assert info.value.param == "n"


def test_choice_message_lists_values() -> None:
    with pytest.raises(errors.BadRequestError) as info:
        validate({"size": SIZE}, {"size": "1x1"}, from_form=False)
    assert info.value.message == "Invalid value: '1x1'. Supported values are: '1024x1024' and 'auto'."


def test_number_range() -> None:
    with pytest.raises(errors.BadRequestError) as info:
        validate({"guidance_scale": SCALE}, {"guidance_scale": 31}, from_form=False)
    assert info.value.code == "decimal_above_max_value"
