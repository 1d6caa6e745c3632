"""The official SDK against `easel serve` running tiny SD, SD-inpainting, SDXL and Flux pipelines."""

from __future__ import annotations

import base64
import io
import threading
import time
from typing import Any, Literal

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import sdk
from tests.helpers import Server, decode, items, mask_png, noisy_png, png

from .conftest import SERVED

MODELS = list(SERVED)
HOLE = (64, 64, 192, 160)


def pixels(b64: str | None) -> np.ndarray:
    assert b64 is not None
    return np.asarray(decode(base64.b64decode(b64)).convert("RGB"), dtype=np.int16)


@pytest.fixture
def client(diffusers_server: Server) -> openai.OpenAI:
    return sdk(diffusers_server)


@pytest.mark.parametrize("model", MODELS)
def test_generate_n_images_with_seeds(client: openai.OpenAI, model: str) -> None:
    result = client.images.generate(
        model=model, prompt="a lighthouse at dusk", n=2, size="256x384", extra_body={"seed": 41}
    )
    assert result.size == "256x384"
    assert result.quality == "medium"
    assert result.background == "opaque"
    first, second = (pixels(item.b64_json) for item in items(result))
    assert first.shape == (384, 256, 3)
    assert [item.model_extra["seed"] for item in items(result) if item.model_extra] == [41, 42]
    assert np.abs(first - second).mean() > 1, "each image has its own noise"


@pytest.mark.parametrize("model", MODELS)
def test_seed_reproduces_identical_pixels(client: openai.OpenAI, model: str) -> None:
    def once(n: int) -> list[str | None]:
        result = client.images.generate(
            model=model, prompt="a red fox", n=n, quality="low", extra_body={"seed": 1234}
        )
        return [item.b64_json for item in items(result)]

    alone = once(1)
    assert once(1) == alone
    # Image i of a request uses seed + i: the first of a pair is the single image again, but
    # for float rounding (a batch of two runs other kernels): at most one level, on < 0.1%.
    diff = np.abs(pixels(once(2)[0]) - pixels(alone[0]))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.001
    other = client.images.generate(model=model, prompt="a red fox", quality="low", extra_body={"seed": 1235})
    assert items(other)[0].b64_json != alone[0]


@pytest.mark.parametrize("model", MODELS)
def test_mask_edit_keeps_every_unmasked_pixel(client: openai.OpenAI, model: str) -> None:
    source = noisy_png((256, 256), seed=3)
    result = client.images.edit(
        model=model,
        image=("in.png", source, "image/png"),
        mask=("mask.png", mask_png((256, 256), HOLE), "image/png"),
        prompt="a blue door",
        size="256x256",
    )
    out, original = pixels(items(result)[0].b64_json), pixels(base64.b64encode(source).decode())
    kept = np.ones((256, 256), bool)
    kept[HOLE[1] : HOLE[3], HOLE[0] : HOLE[2]] = False
    assert (out[kept] == original[kept]).all(), "pixels outside the edit area come back unchanged"
    assert (out[~kept] != original[~kept]).any(axis=-1).mean() > 0.9, "the edit area is repainted"


def test_transparent_pixels_of_the_image_are_the_edit_area(client: openai.OpenAI) -> None:
    image = decode(noisy_png((256, 256), seed=5)).convert("RGBA")
    image.paste((0, 0, 0, 0), HOLE)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    result = client.images.edit(model="sdxl", image=("in.png", buf.getvalue(), "image/png"), prompt="a cat")
    out = pixels(items(result)[0].b64_json)
    original = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert (out[: HOLE[1]] == original[: HOLE[1]]).all()
    assert (out[HOLE[1] : HOLE[3], HOLE[0] : HOLE[2]] != 0).any()


@pytest.mark.parametrize("fidelity", ["low", "high"])
def test_edit_without_mask_is_image_to_image(client: openai.OpenAI, fidelity: Literal["low", "high"]) -> None:
    source = noisy_png((512, 512), seed=9)
    result = client.images.edit(
        model="sd",
        image=("in.png", source, "image/png"),
        prompt="watercolour",
        input_fidelity=fidelity,
        extra_body={"seed": 5},
    )
    assert result.size == "512x512", "size=auto follows the input's shape"
    assert pixels(items(result)[0].b64_json).shape == (512, 512, 3)


@pytest.mark.parametrize("model", MODELS)
def test_variations_differ_from_each_other(client: openai.OpenAI, model: str) -> None:
    result = client.images.create_variation(
        model=model, image=("in.png", noisy_png((256, 256), seed=1), "image/png"), n=2, size="256x256"
    )
    first, second = (pixels(item.b64_json) for item in items(result))
    assert first.shape == (256, 256, 3)
    assert np.abs(first - second).mean() > 1


@pytest.mark.parametrize("model", MODELS)
def test_stream_sends_real_partials_then_the_image(client: openai.OpenAI, model: str) -> None:
    events = list(
        client.images.generate(
            model=model, prompt="a city at night", stream=True, partial_images=3, extra_body={"seed": 8}
        )
    )
    kinds = [e.type for e in events]
    # medium quality is 4 steps here: previews after steps 1, 2 and 3, then the image.
    assert kinds == ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    shown = [pixels(e.b64_json) for e in events]
    for i, earlier in enumerate(shown):
        for later in shown[i + 1 :]:
            assert np.abs(earlier - later).mean() > 0.5, "each partial shows a different stage"
    seeded = client.images.generate(model=model, prompt="a city at night", extra_body={"seed": 8})
    assert items(seeded)[0].b64_json == events[-1].b64_json, "streaming does not change the pixels"


def test_stream_edit_partials_keep_the_unmasked_pixels(client: openai.OpenAI) -> None:
    source = noisy_png((256, 256), seed=4)
    events = list(
        client.images.edit(
            model="sd",
            image=("in.png", source, "image/png"),
            mask=("mask.png", mask_png((256, 256), HOLE), "image/png"),
            prompt="a window",
            stream=True,
            partial_images=2,
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    original = pixels(base64.b64encode(source).decode())
    for event in events:
        assert (pixels(event.b64_json)[: HOLE[1]] == original[: HOLE[1]]).all()


def test_models_list_what_each_pipeline_supports(client: openai.OpenAI) -> None:
    models = {m.id: m.model_extra or {} for m in client.models.list().data}
    assert models["sd"]["backend"] == "diffusers"
    assert models["sd"]["transparent_background"] is False
    assert models["sd"]["max_input_images"] == 1
    assert set(models["sdxl"]["extensions"]) == {"seed", "steps", "guidance_scale", "negative_prompt"}
    assert set(models["flux"]["extensions"]) == {"seed", "steps"}, "schnell-like Flux: no guidance"
    assert models["sd"]["sizes"] == ["256x256", "512x512", "256x384"]


@pytest.mark.parametrize(
    ("model", "kwargs", "param", "fragment"),
    [
        ("sd", {"size": "1024x1024"}, "size", "Supported values are: '256x256'"),
        ("sd", {"background": "transparent"}, "background", "'transparent'"),
        ("sd", {"extra_body": {"steps": 13}}, "steps", "13"),
        ("sdxl", {"extra_body": {"guidance_scale": 25}}, "guidance_scale", "25"),
        ("flux", {"extra_body": {"negative_prompt": "blur"}}, "negative_prompt", "Unknown parameter"),
        ("flux", {"extra_body": {"guidance_scale": 3}}, "guidance_scale", "Unknown parameter"),
        ("sd", {"extra_body": {"negative_prompt": "blur"}}, "negative_prompt", "guidance"),
    ],
)
def test_what_a_model_cannot_do_is_a_400(
    client: openai.OpenAI, model: str, kwargs: dict[str, Any], param: str, fragment: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=model, prompt="x", **kwargs)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert fragment in error["message"]


def test_a_second_input_image_names_the_limitation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="sdxl",
            image=[("a.png", png(), "image/png"), ("b.png", png(), "image/png")],
            prompt="merge them",
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "array_above_max_length"
    assert "reference-image" in error["message"]


def test_negative_prompt_and_guidance_are_honoured(client: openai.OpenAI) -> None:
    def draw(**extra: object) -> str | None:
        result = client.images.generate(model="sdxl", prompt="a tree", extra_body={"seed": 3, **extra})
        return items(result)[0].b64_json

    plain = draw()
    assert draw(negative_prompt="leaves") != plain
    assert draw(guidance_scale=1.5) != plain
    assert draw(steps=2) != plain


def test_server_answers_while_a_generation_runs(client: openai.OpenAI, diffusers_server: Server) -> None:
    finished: list[float] = []

    def long_generation() -> None:
        client.images.generate(model="sdxl", prompt="slow", size="512x512", n=4, extra_body={"steps": 12})
        finished.append(time.monotonic())

    worker = threading.Thread(target=long_generation)
    worker.start()
    time.sleep(0.5)  # let it reach the pipeline
    answered = []
    for _ in range(3):
        start = time.monotonic()
        assert httpx.get(f"{diffusers_server.url}/health", timeout=5).status_code == 200
        assert client.models.retrieve("sd").id == "sd"
        client.images.generate(model="placeholder", prompt="meanwhile", size="256x256")
        answered.append(time.monotonic())
        assert answered[-1] - start < 2.0
    worker.join(timeout=120)
    assert finished, "the long generation completed"
    assert max(answered) < finished[0], "the other answers came while the generation ran"
