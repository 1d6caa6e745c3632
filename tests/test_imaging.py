"""Decoding untrusted uploads (limits, bombs, formats) and encoding results."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from easel import errors
from easel.imaging import Limits, Upload, check_mimetype, decode, encode
from tests.helpers import bomb_png, png

LIMITS = Limits(max_bytes=1_000_000, max_pixels=4_000_000)


def up(data: bytes, content_type: str | None = "image/png") -> Upload:
    return Upload(param="image", data=data, content_type=content_type)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decodes_the_three_formats(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(buf, fmt)
    assert decode(up(buf.getvalue()), LIMITS).size == (20, 10)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_image"),
        (b"GIF89a" + b"\x00" * 20, "invalid_image"),
        (png()[:60], "invalid_image"),
        (bomb_png(), "image_too_large"),
        (bomb_png(3000, 3000), "image_too_large"),
        (b"\x00" * 1_000_001, "image_too_large"),
    ],
)
def test_bad_uploads_are_400s(data: bytes, code: str) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        decode(up(data), LIMITS)
    assert info.value.code == code
    assert info.value.param == "image"


def test_gif_is_not_accepted() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "GIF")
    with pytest.raises(errors.BadRequestError, match="not a PNG, JPEG or WebP"):
        decode(up(buf.getvalue()), LIMITS)


def test_mimetype_check() -> None:
    check_mimetype(up(b"", "image/webp"))
    check_mimetype(up(b"", "IMAGE/PNG; charset=binary"))
    with pytest.raises(errors.BadRequestError) as info:
        check_mimetype(up(b"", None))
    assert info.value.code == "unsupported_file_mimetype"


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("png", "RGB"), ("png", "RGBA"), ("png", "P"), ("jpeg", "RGBA"), ("webp", "RGBA"), ("webp", "L")],
)
def test_encode_round_trips(fmt: str, mode: str) -> None:
    image = Image.new(mode, (33, 17))
    out = Image.open(io.BytesIO(encode(image, fmt, 80)))  # type: ignore[arg-type]
    assert out.format == fmt.upper()
    assert out.size == (33, 17)


def test_png_keeps_alpha_and_jpeg_compression_shrinks() -> None:
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    assert Image.open(io.BytesIO(encode(image, "png"))).mode == "RGBA"
    noisy = Image.effect_noise((256, 256), 80).convert("RGB")
    assert len(encode(noisy, "jpeg", 20)) < len(encode(noisy, "jpeg", 100))
