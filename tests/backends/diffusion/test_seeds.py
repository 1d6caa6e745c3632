"""Image i of a request with seed S is what a lone request with seed S + i draws: every image, every
path that takes an input image (and generations), every tiny family."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import openai
import pytest

from tests.conftest import sdk
from tests.helpers import Server, decode, items, mask_png, noisy_png

from .conftest import SERVED

SEED = 900
SOURCE = noisy_png((256, 256), seed=5)


def pictures(result: openai.types.ImagesResponse) -> list[np.ndarray]:
    return [
        np.asarray(decode(base64.b64decode(i.b64_json or "")).convert("RGB"), dtype=np.int16)
        for i in items(result)
    ]


def generation(client: openai.OpenAI, model: str, n: int, seed: int) -> list[np.ndarray]:
    return pictures(client.images.generate(model=model, prompt="a harbour", size="256x256", n=n,
                                           extra_body={"seed": seed, "steps": 3}))  # fmt: skip


def mask_edit(client: openai.OpenAI, model: str, n: int, seed: int) -> list[np.ndarray]:
    mask = ("m.png", mask_png((256, 256), (64, 64, 192, 160)), "image/png")
    result = client.images.edit(model=model, image=("i.png", SOURCE, "image/png"), mask=mask, prompt="a boat",
                                size="256x256", n=n, extra_body={"seed": seed, "steps": 3})  # fmt: skip
    return pictures(result)


def variation(client: openai.OpenAI, model: str, n: int, seed: int) -> list[np.ndarray]:
    image = ("i.png", SOURCE, "image/png")
    extra = {"seed": seed, "steps": 3}
    result = client.images.create_variation(model=model, image=image, n=n, size="256x256", extra_body=extra)
    return pictures(result)


PATHS: dict[str, Callable[[openai.OpenAI, str, int, int], list[np.ndarray]]] = {
    "generation": generation,
    "mask edit": mask_edit,
    "variation": variation,
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("model", list(SERVED))
def test_every_image_of_a_request_is_its_seeds_own(diffusers_server: Server, model: str, path: str) -> None:
    client, draw = sdk(diffusers_server), PATHS[path]
    together = draw(client, model, 2, SEED)
    for i, image in enumerate(together):
        (alone,) = draw(client, model, 1, SEED + i)
        diff = np.abs(image - alone)
        # The same noise and the same encoded input: equal but for float rounding in batched
        # kernels (fp32), as batched generations are.
        assert diff.max() <= 2, (model, path, i, int(diff.max()))
        assert (diff > 0).mean() < 0.01, (model, path, i, float((diff > 0).mean()))
