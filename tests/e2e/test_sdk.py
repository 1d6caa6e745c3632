"""The official openai SDK against `easel serve` in a subprocess: every endpoint, both modes."""

from __future__ import annotations

import base64
from typing import Literal

import httpx
import numpy as np
import openai
import pytest
from openai.types import ImageGenCompletedEvent

from easel.contract.catalogue import MODELS
from tests.helpers import decode, items, mask_png, noisy_png, png

pytestmark = pytest.mark.slow


def pixels(b64: str) -> np.ndarray:
    return np.asarray(decode(base64.b64decode(b64)).convert("RGBA"))


def test_generate_b64_reports_resolved_values(any_client: openai.OpenAI) -> None:
    result = any_client.images.generate(model="gpt-image-1", prompt="a lighthouse at dusk")
    image = decode(base64.b64decode(items(result)[0].b64_json or ""))
    assert image.format == "PNG"
    assert image.size == (1024, 1024)
    assert (result.size, result.quality, result.background, result.output_format) == (
        "1024x1024",
        "medium",
        "opaque",
        "png",
    )
    assert result.usage is not None
    assert result.usage.output_tokens == 1056
    assert result.usage.total_tokens == result.usage.input_tokens + 1056
    assert result._request_id
    assert result._request_id.startswith("req_")


@pytest.mark.parametrize(("fmt", "magic"), [("jpeg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_generate_other_formats(client: openai.OpenAI, fmt: Literal["jpeg", "webp"], magic: bytes) -> None:
    result = client.images.generate(
        prompt="a cat",
        output_format=fmt,
        output_compression=60,
        size="1536x1024",
        quality="low",
    )
    data = base64.b64decode(items(result)[0].b64_json or "")
    assert data.startswith(magic)
    assert decode(data).size == (1536, 1024)


def test_transparent_background_has_real_alpha(client: openai.OpenAI) -> None:
    result = client.images.generate(prompt="a red ball", background="transparent", size="1024x1024")
    alpha = pixels(items(result)[0].b64_json or "")[..., 3]
    assert result.background == "transparent"
    assert alpha.min() == 0
    assert alpha.max() == 255


def test_dalle2_url_is_fetchable_without_a_key(client: openai.OpenAI) -> None:
    result = client.images.generate(model="dall-e-2", prompt="a fox", size="256x256", n=2)
    assert len(items(result)) == 2
    assert result.usage is None
    assert result.size is None
    for item in items(result):
        assert item.url
        assert item.b64_json is None
        response = httpx.get(item.url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert decode(response.content).size == (256, 256)


def test_dalle3_revised_prompt(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="dall-e-3", prompt="a castle", style="natural", quality="hd", response_format="b64_json"
    )
    assert items(result)[0].revised_prompt == "a castle"
    assert decode(base64.b64decode(items(result)[0].b64_json or "")).size == (1024, 1024)


def test_lenient_gpt_image_accepts_response_format_url(client: openai.OpenAI) -> None:
    result = client.images.generate(prompt="a tree", response_format="url", size="512x512")
    assert httpx.get(items(result)[0].url or "").status_code == 200


def test_n_images_differ_and_seed_reproduces(client: openai.OpenAI) -> None:
    first = client.images.generate(prompt="boats", n=3, size="256x256", extra_body={"seed": 7})
    images = [item.b64_json for item in items(first)]
    assert len(set(images)) == 3
    again = client.images.generate(prompt="boats", n=3, size="256x256", extra_body={"seed": 7})
    assert [item.b64_json for item in items(again)] == images
    seeds = [item.model_extra["seed"] for item in items(first)]  # type: ignore[index]
    assert seeds == [7, 8, 9]
    # The second image alone, from its own seed, gives the same bytes.
    alone = client.images.generate(prompt="boats", size="256x256", extra_body={"seed": 8})
    assert items(alone)[0].b64_json == images[1]


def test_edit_with_mask_keeps_unmasked_pixels(any_client: openai.OpenAI) -> None:
    source = noisy_png((1024, 1024))
    mask = mask_png((1024, 1024), (256, 256, 768, 768))
    result = any_client.images.edit(
        model="gpt-image-1",
        image=("in.png", source, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a sun",
    )
    out = pixels(items(result)[0].b64_json or "")[..., :3]
    original = np.asarray(decode(source).convert("RGB"))
    outside = np.ones((1024, 1024), bool)
    outside[256:768, 256:768] = False
    assert (out[outside] == original[outside]).all()
    assert (out[~outside] != original[~outside]).any(axis=-1).mean() > 0.5


def test_edit_image_list_uses_the_reference(client: openai.OpenAI) -> None:
    base = noisy_png((512, 512), seed=1)
    mask = mask_png((512, 512), (0, 0, 256, 256))
    plain = client.images.edit(
        image=[("a.png", base, "image/png")],
        mask=("m.png", mask, "image/png"),
        prompt="x",
        size="512x512",
        extra_body={"seed": 3},
    )
    red = png((64, 64), colour=(255, 0, 0))
    with_ref = client.images.edit(
        image=[("a.png", base, "image/png"), ("b.png", red, "image/png")],
        mask=("m.png", mask, "image/png"),
        prompt="x",
        size="512x512",
        extra_body={"seed": 3},
    )
    a = pixels(items(plain)[0].b64_json or "")[:256, :256, :3].astype(int)
    b = pixels(items(with_ref)[0].b64_json or "")[:256, :256, :3].astype(int)
    assert b[..., 0].mean() > a[..., 0].mean() + 20  # the red reference shows in the repaint
    assert (
        pixels(items(with_ref)[0].b64_json or "")[300:, 300:]
        == pixels(items(plain)[0].b64_json or "")[300:, 300:]
    ).all()


def test_edit_without_mask_uses_image_transparency(client: openai.OpenAI) -> None:
    from PIL import Image

    image = Image.new("RGBA", (256, 256), (10, 200, 10, 255))
    image.paste((0, 0, 0, 0), (0, 0, 128, 256))
    import io

    buf = io.BytesIO()
    image.save(buf, "PNG")
    result = client.images.edit(
        model="dall-e-2",
        image=("t.png", buf.getvalue(), "image/png"),
        prompt="flowers",
        size="256x256",
        response_format="b64_json",
    )
    out = pixels(items(result)[0].b64_json or "")
    assert (out[:, 128:] == (10, 200, 10, 255)).all()
    assert (out[:, :128, :3] != (10, 200, 10)).any(axis=-1).mean() > 0.5


def test_variations_derive_from_input_and_differ(client: openai.OpenAI) -> None:
    source = noisy_png((256, 256), seed=5)
    result = client.images.create_variation(
        image=("v.png", source, "image/png"), n=2, size="256x256", response_format="b64_json"
    )
    a, b = (pixels(item.b64_json or "")[..., :3].astype(float) for item in items(result))
    original = np.asarray(decode(source).convert("RGB"), dtype=float)
    assert not np.array_equal(a, b)
    for out in (a, b):
        assert np.corrcoef(out.ravel(), original.ravel())[0, 1] > 0.5


def test_stream_generation_partials_are_real(any_client: openai.OpenAI) -> None:
    events = list(
        any_client.images.generate(
            model="gpt-image-1", prompt="a mountain lake", stream=True, partial_images=3, size="1024x1024"
        )
    )
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    frames = [e.b64_json for e in events]
    assert len(set(frames)) == 4  # each partial differs from the others and from the final
    assert [e.partial_image_index for e in events[:3]] == [0, 1, 2]  # type: ignore[union-attr]
    final = events[-1]
    assert isinstance(final, ImageGenCompletedEvent)
    assert final.size == "1024x1024"
    assert final.usage.output_tokens == 1056


def test_stream_n2_each_image_has_its_partials(client: openai.OpenAI) -> None:
    events = list(client.images.generate(prompt="birds", stream=True, partial_images=1, n=2, size="256x256"))
    assert [e.type.rsplit(".", 1)[1] for e in events] == [
        "partial_image",
        "completed",
        "partial_image",
        "completed",
    ]
    # Each completed event: the whole input, and its own image's output tokens
    # (medium at 256x256 is the 1024x1024 figure scaled by pixel count: 1056 / 16 = 66).
    for completed in (events[1], events[3]):
        usage = completed.usage  # type: ignore[union-attr]
        assert usage.output_tokens == 66
        assert usage.total_tokens == usage.input_tokens + 66


def test_stream_edit(client: openai.OpenAI) -> None:
    events = list(
        client.images.edit(
            image=("a.png", noisy_png((256, 256)), "image/png"),
            prompt="snow",
            stream=True,
            partial_images=2,
            size="256x256",
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]


def test_models_list_and_retrieve(any_client: openai.OpenAI, request: pytest.FixtureRequest) -> None:
    ids = [m.id for m in any_client.models.list()]
    strict = request.node.callspec.params["any_server"] == "strict"
    # The strict server configures three models; the default serves every id of the SDK's list.
    assert ids == (["gpt-image-1", "dall-e-2", "dall-e-3"] if strict else list(MODELS))
    model = any_client.models.retrieve("dall-e-3")
    assert model.object == "model"
    assert model.owned_by == "easel"
    assert model.shutdown_date == "2026-05-12"
    assert model.model_extra
    assert model.model_extra["profile"] == "dall-e-3"
    with pytest.raises(openai.NotFoundError) as info:
        any_client.models.retrieve("nope")
    assert info.value.code == "model_not_found"
