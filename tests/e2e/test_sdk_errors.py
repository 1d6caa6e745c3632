"""CONTRACT §5 error rows through the official SDK: exception class, code, param and message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import sdk
from tests.helpers import Server, bomb_png, items, mask_png, noisy_png, png, start_server

pytestmark = pytest.mark.slow
Call = Callable[[openai.OpenAI], Any]


def gen(**kw: Any) -> Call:
    kw.setdefault("prompt", "a fox")
    kw.setdefault("model", "gpt-image-1")
    return lambda c: c.images.generate(**kw)


def edit(image: bytes | None = None, mime: str = "image/png", **kw: Any) -> Call:
    kw.setdefault("prompt", "a fox")
    kw.setdefault("model", "gpt-image-1")
    return lambda c: c.images.edit(image=("in.png", image or noisy_png((256, 256)), mime), **kw)


BOTH_MODES: list[tuple[str, Call, type[openai.APIError], str | None, str | None, str | None]] = [
    ("invalid size", gen(size="300x300"), openai.BadRequestError, "invalid_value", "size", None),
    (
        "missing prompt",
        gen(extra_body={"prompt": None}),
        openai.BadRequestError,
        "missing_required_parameter",
        "prompt",
        "Missing required parameter: 'prompt'.",
    ),
    (
        "prompt too long",
        gen(prompt="x" * 32001),
        openai.BadRequestError,
        "string_above_max_length",
        "prompt",
        "Invalid 'prompt': string too long. Expected a string with maximum length 32000, "
        "but got a string with length 32001 instead.",
    ),
    (
        "n too big",
        gen(n=11),
        openai.BadRequestError,
        "integer_above_max_value",
        "n",
        "Invalid 'n': integer above maximum value. Expected a value <= 10, but got 11 instead.",
    ),
    ("n too small", gen(n=0), openai.BadRequestError, "integer_below_min_value", "n", None),
    (
        "n wrong type",
        gen(extra_body={"n": "2"}),
        openai.BadRequestError,
        "invalid_type",
        "n",
        "Invalid type for 'n': expected an integer, but got a string instead.",
    ),
    (
        "unknown parameter",
        gen(extra_body={"colour": "red"}),
        openai.BadRequestError,
        "unknown_parameter",
        "colour",
        "Unknown parameter: 'colour'.",
    ),
    ("style on gpt-image", gen(style="vivid"), openai.BadRequestError, "unknown_parameter", "style", None),
    (
        "png compression",
        gen(output_compression=50),
        openai.BadRequestError,
        "invalid_png_output_compression",
        "output_compression",
        "Compression less than 100 is not supported for PNG output format",
    ),
    (
        "transparent jpeg",
        gen(background="transparent", output_format="jpeg"),
        openai.BadRequestError,
        "invalid_value",
        "background",
        None,
    ),
    (
        "partial_images range",
        gen(stream=True, partial_images=4),
        openai.BadRequestError,
        "integer_above_max_value",
        "partial_images",
        None,
    ),
    (
        "unknown model",
        gen(model="gpt-nope"),
        openai.NotFoundError,
        "model_not_found",
        "model",
        "The model `gpt-nope` does not exist or you do not have access to it.",
    ),
    (
        "dall-e-3 n=2",
        gen(model="dall-e-3", n=2),
        openai.BadRequestError,
        "integer_above_max_value",
        "n",
        None,
    ),
    (
        "dall-e-2 prompt limit",
        gen(model="dall-e-2", prompt="y" * 1001),
        openai.BadRequestError,
        "string_above_max_length",
        "prompt",
        None,
    ),
    (
        "dall-e-2 gpt-only field",
        gen(model="dall-e-2", output_format="png"),
        openai.BadRequestError,
        "unknown_parameter",
        "output_format",
        None,
    ),
    (
        "mask without alpha",
        edit(mask=("m.png", png((256, 256)), "image/png")),
        openai.BadRequestError,
        "invalid_mask_image_format",
        "mask",
        "Invalid mask image format - mask image missing alpha channel",
    ),
    (
        "mask size",
        edit(mask=("m.png", mask_png((128, 128), (0, 0, 8, 8)), "image/png")),
        openai.BadRequestError,
        "invalid_mask_image_format",
        "mask",
        "Invalid mask image format - mask size does not match image size",
    ),
    (
        "corrupt image",
        edit(image=b"\x89PNG\r\n\x1a\nnot really"),
        openai.BadRequestError,
        "invalid_image",
        "image",
        None,
    ),
    ("decompression bomb", edit(image=bomb_png()), openai.BadRequestError, "image_too_large", "image", None),
    (
        "too many images",
        lambda c: c.images.edit(image=[("a.png", png((32, 32)), "image/png")] * 17, prompt="x"),
        openai.BadRequestError,
        "array_above_max_length",
        "image",
        None,
    ),
    ("dall-e-3 edits", edit(model="dall-e-3"), openai.BadRequestError, "invalid_value", "model", None),
    (
        "dall-e-2 edit non-square",
        edit(
            image=noisy_png((64, 32)),
            model="dall-e-2",
            mask=("m.png", mask_png((64, 32), (0, 0, 8, 8)), "image/png"),
        ),
        openai.BadRequestError,
        "invalid_image_format",
        "image",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "exc", "code", "param", "message"), BOTH_MODES, ids=[row[0] for row in BOTH_MODES]
)
def test_error_rows(
    any_client: openai.OpenAI,
    name: str,
    call: Call,
    exc: type[openai.APIError],
    code: str | None,
    param: str | None,
    message: str | None,
) -> None:
    with pytest.raises(exc) as info:
        call(any_client)
    error = info.value
    assert isinstance(error, openai.APIStatusError)
    assert error.code == code
    assert error.param == param
    body = error.body
    assert isinstance(body, dict)
    assert set(body) >= {"message", "type", "param", "code"}
    if message is not None:
        assert body["message"] == message
    assert error.response.headers["content-type"] == "application/json"
    assert error.response.headers["x-request-id"].startswith("req_")


def test_strict_rejects_lenient_extras(strict_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        strict_client.images.generate(prompt="x", response_format="url")
    assert (info.value.code, info.value.param) == ("unknown_parameter", "response_format")
    with pytest.raises(openai.BadRequestError) as info:
        strict_client.images.generate(prompt="x", size="512x512")
    assert info.value.body["message"] == (  # type: ignore[index]
        "Invalid value: '512x512'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'."
    )
    with pytest.raises(openai.BadRequestError) as info:
        strict_client.images.create_variation(
            image=("a.png", png((64, 64)), "image/png"), model="gpt-image-1"
        )
    assert info.value.body["message"] == (  # type: ignore[index]
        "Invalid value: 'gpt-image-1'. Value must be 'dall-e-2'."
    )


def test_strict_mimetype_vs_lenient_sniffing(strict_client: openai.OpenAI, client: openai.OpenAI) -> None:
    call = edit(mime="application/octet-stream")
    with pytest.raises(openai.BadRequestError) as info:
        call(strict_client)
    assert info.value.code == "unsupported_file_mimetype"
    assert info.value.body["message"] == (  # type: ignore[index]
        "Invalid file 'image': unsupported mimetype ('application/octet-stream'). "
        "Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'."
    )
    assert call(client).data  # lenient sniffs the bytes instead


def test_lenient_accepts_what_strict_refuses(client: openai.OpenAI) -> None:
    assert items(client.images.generate(prompt="x", size="512x512", response_format="url"))[0].url
    assert client.images.create_variation(
        image=("a.png", png((64, 64)), "image/png"), model="gpt-image-1", size="256x256"
    ).data


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("keyed"),
        "max_body_bytes = 200000\n",
        env={"EASEL_API_KEYS": "sk-alpha-0123456789,sk-beta-abcdefghij"},
    )
    yield server
    server.stop()


def test_keys_required_when_configured(keyed_server: Server) -> None:
    keyed = sdk(keyed_server, "sk-beta-abcdefghij")
    assert keyed.images.generate(prompt="x", size="256x256").data
    url = items(keyed.images.generate(model="dall-e-2", prompt="x", size="256x256"))[0].url
    assert httpx.get(url or "").status_code == 200  # hosted URLs need no key
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(keyed_server, "sk-wrong-key-wxyz").images.generate(prompt="x")
    assert info.value.code == "invalid_api_key"
    assert info.value.body["message"] == "Incorrect API key provided: sk-wro***wxyz."  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        sdk(keyed_server, "sk-wrong-key-wxyz").models.list()
    missing = httpx.post(f"{keyed_server.url}/v1/images/generations", json={"prompt": "x"})
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You didn't provide an API key.")
    assert "sk-wrong" not in keyed_server.log.read_text()  # keys never reach the log


def test_body_too_large_is_413(keyed_server: Server) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(keyed_server, "sk-alpha-0123456789").images.edit(
            image=("a.png", noisy_png((300, 300)), "image/png"), prompt="x"
        )
    assert info.value.status_code == 413
    assert info.value.code == "request_too_large"


def test_refuses_open_non_loopback(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"refusing to serve 0\.0\.0\.0 without API keys"):
        start_server(tmp_path, args=("--host", "0.0.0.0"))


def test_allow_open_serves_a_non_loopback_bind(tmp_path: Path) -> None:
    server = start_server(tmp_path, args=("--host", "0.0.0.0", "--allow-open"))
    try:
        assert httpx.get(f"{server.url}/health").status_code == 200  # reached over loopback
    finally:
        server.stop()


def test_seed_key_in_strict_mode_only_when_asked(strict_client: openai.OpenAI, client: openai.OpenAI) -> None:
    plain = items(strict_client.images.generate(prompt="x"))[0]
    assert "seed" not in (plain.model_extra or {})
    seeded = items(strict_client.images.generate(prompt="x", extra_body={"seed": 11}))[0]
    assert (seeded.model_extra or {})["seed"] == 11
    lenient = items(client.images.generate(prompt="x", size="256x256"))[0]
    assert isinstance((lenient.model_extra or {})["seed"], int)
