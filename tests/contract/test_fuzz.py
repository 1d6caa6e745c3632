"""Property tests: no bytes make the decoder fail other than with a 400, no body makes the API 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from easel import errors
from easel.app import create_app
from easel.imaging import Limits, Upload, decode
from easel.settings import Settings
from tests.helpers import mask_png, noisy_png, png

pytestmark = pytest.mark.slow
LIMITS = Limits(max_bytes=2_000_000, max_pixels=4_000_000)
SEEDS = [
    png((16, 16)),
    png((16, 16), "RGBA", (1, 2, 3, 0)),
    noisy_png((24, 24)),
    mask_png((16, 16), (0, 0, 4, 4)),
]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def decode_or_400(data: bytes) -> None:
    try:
        decode(Upload(param="image", data=data), LIMITS)
    except errors.APIError as exc:
        assert exc.status == 400
        assert exc.code in ("invalid_image", "image_too_large")


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    decode_or_400(data)


@FAST
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=12),
    st.integers(0, 200),
)
def test_mutated_real_pngs(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for index, value in flips:
        data[index % len(data)] = value
    decode_or_400(bytes(data[: len(data) - cut]))


APP = TestClient(
    create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="easel-fuzz-")))), raise_server_exceptions=False
)
NAMES = [
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "stream",
    "partial_images",
    "user",
    "response_format",
    "style",
    "seed",
    "steps",
    "guidance_scale",
    "negative_prompt",
    "input_fidelity",
    "images",
    "mask",
    "extra",
]
GOOD = {
    "model": st.sampled_from(["gpt-image-1", "dall-e-2", "dall-e-3", "x"]),
    "size": st.sampled_from(["256x256", "auto", "1024x1024", "0x0", "x"]),
    "n": st.integers(-2, 12),
}
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(NAMES), max_size=6, unique=True))
    body = {k: draw(GOOD.get(k, JSON)) for k in keys}
    body.setdefault("prompt", draw(st.text(max_size=30)))
    if "size" not in body:
        body["size"] = "256x256"
    return body


@FAST
@given(bodies())
def test_json_generations_never_5xx(body: dict[str, Any]) -> None:
    response = APP.post("/v1/images/generations", json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"message", "type", "param", "code"}


@FAST
@given(bodies())
def test_json_edits_never_5xx(body: dict[str, Any]) -> None:
    assert APP.post("/v1/images/edits", json=body).status_code < 500


@FAST
@given(
    st.dictionaries(st.sampled_from(NAMES), st.text(max_size=12), max_size=5),
    st.lists(
        st.tuples(
            st.sampled_from(["image", "image[]", "mask", "other"]),
            st.sampled_from(SEEDS) | st.binary(max_size=64),
        ),
        max_size=3,
    ),
    st.sampled_from(["/v1/images/edits", "/v1/images/variations"]),
)
def test_multipart_never_5xx(fields: dict[str, str], files: list[tuple[str, bytes]], path: str) -> None:
    fields = {"size": "256x256", **fields}
    response = APP.post(
        path, data=fields, files=[(name, ("f.png", data, "image/png")) for name, data in files] or None
    )
    assert response.status_code < 500, response.text


@FAST
@given(
    st.binary(max_size=512),
    st.sampled_from(
        ["application/json", "multipart/form-data", "multipart/form-data; boundary=abc", "text/plain"]
    ),
)
def test_raw_bytes_never_5xx(raw: bytes, content_type: str) -> None:
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
        response = APP.post(path, content=raw, headers={"content-type": content_type})
        assert response.status_code < 500, (path, response.text)
