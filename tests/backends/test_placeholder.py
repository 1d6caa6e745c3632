"""The placeholder renderer: deterministic, prompt-shaped, exact edits, real alpha, real stages."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from easel.backends.placeholder import PlaceholderBackend
from easel.imaging import encode
from easel.jobs import EditJob, GenerateJob, Render, VariationJob
from easel.settings import ModelSpec

BACKEND = PlaceholderBackend(ModelSpec(id="gpt-image-1"))


def render(**kw: object) -> Render:
    base: dict[str, object] = {
        "model": "m",
        "n": 1,
        "width": 256,
        "height": 256,
        "quality": "medium",
        "background": "opaque",
    }
    return Render(**(base | kw))  # type: ignore[arg-type]


def generate(prompt: str = "a lighthouse", **kw: object) -> list[Image.Image]:
    return [r.image for r in BACKEND.run(GenerateJob(render=render(**kw), prompt=prompt))]


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def test_same_inputs_same_bytes_and_default_seed_is_stable() -> None:
    assert encode(generate(seed=4)[0], "png") == encode(generate(seed=4)[0], "png")
    assert encode(generate()[0], "png") == encode(generate()[0], "png")
    assert encode(generate(seed=4)[0], "png") != encode(generate(seed=5)[0], "png")


@pytest.mark.parametrize("size", [(256, 256), (1536, 1024), (1024, 1792), (17, 9)])
def test_renders_the_requested_size(size: tuple[int, int]) -> None:
    assert generate(width=size[0], height=size[1])[0].size == size


def test_the_prompt_shapes_the_picture() -> None:
    red = arr(generate("red red red", seed=1)[0])
    blue = arr(generate("blue blue blue", seed=1)[0])
    assert red[..., 0].mean() > red[..., 2].mean() + 30
    assert blue[..., 2].mean() > blue[..., 0].mean() + 30
    assert (arr(generate("a cat", seed=1)[0]) != arr(generate("a dog", seed=1)[0])).any()


def test_negative_prompt_and_steps_change_the_picture() -> None:
    base = arr(generate("red blue", seed=2)[0])
    assert (base != arr(generate("red blue", seed=2, negative_prompt="red")[0])).any()
    assert (base != arr(generate("red blue", seed=2, steps=30)[0])).any()


def test_n_images_differ() -> None:
    images = generate(n=3, seed=9)
    assert len({im.tobytes() for im in images}) == 3


def test_transparent_background_is_real_alpha() -> None:
    image = generate(background="transparent", seed=3)[0]
    alpha = arr(image)[..., 3]
    assert image.mode == "RGBA"
    assert alpha.min() == 0
    assert alpha.max() == 255


def test_previews_are_real_stages() -> None:
    seen: list[tuple[int, int, bytes]] = []
    job = GenerateJob(render=render(n=2, previews=3, seed=1), prompt="a b c d e f")
    finals = [r.image.tobytes() for r in BACKEND.run(job, lambda i, k, im: seen.append((i, k, im.tobytes())))]
    assert [(i, k) for i, k, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    frames = [b for _, _, b in seen[:3]] + finals[:1]
    assert len(set(frames)) == 4


def test_edit_changes_only_the_mask_area() -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (50, 60, 150, 200))
    job = EditJob(render=render(), prompt="sun", images=(base,), mask=mask)
    out = arr(next(BACKEND.run(job)).image.convert("RGB"))
    inside = np.zeros((256, 256), bool)
    inside[60:200, 50:150] = True
    assert (out[~inside] == arr(base)[~inside]).all()
    assert (out[inside] != arr(base)[inside]).any(axis=-1).mean() > 0.5


def test_edit_resizes_to_the_requested_size() -> None:
    base = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    job = EditJob(render=render(width=512, height=512), prompt="sun", images=(base,), mask=None)
    assert next(BACKEND.run(job)).image.size == (512, 512)


def test_variations_are_derived_and_differ() -> None:
    source = Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    a, b = (arr(r.image) for r in BACKEND.run(VariationJob(render=render(n=2), image=source)))
    assert (a != b).any()
    assert np.corrcoef(a.ravel(), arr(source).ravel())[0, 1] > 0.5


def test_opaque_image_without_mask_is_edited_as_a_whole() -> None:
    base = Image.new("RGB", (128, 128), (200, 30, 30))
    job = EditJob(render=render(width=128, height=128, seed=1), prompt="blue sea", images=(base,), mask=None)
    out = arr(next(BACKEND.run(job)).image)
    changed = (out[..., :3] != (200, 30, 30)).any(axis=-1)
    assert changed.mean() > 0.9  # repainted everywhere...
    assert out[..., 0].mean() > 60  # ...while the input's red still shows through


def test_natural_style_and_low_guidance_mute_colours() -> None:
    def saturation(image: Image.Image) -> float:
        a = arr(image)[..., :3]
        return float((a.max(axis=-1) - a.min(axis=-1)).mean())

    vivid = saturation(generate("red green blue", seed=4)[0])
    assert saturation(generate("red green blue", seed=4, style="natural")[0]) < vivid
    assert saturation(generate("red green blue", seed=4, guidance_scale=0.5)[0]) < vivid


def test_caption_option() -> None:
    quiet = PlaceholderBackend(ModelSpec(id="m", options={"caption": False}))
    job = GenerateJob(render=render(seed=2), prompt="words words words")
    with_caption = next(BACKEND.run(job)).image
    without = next(quiet.run(job)).image
    bottom = slice(200, 256)
    assert (arr(with_caption)[bottom] != arr(without)[bottom]).any()
    assert (arr(with_caption)[:150] == arr(without)[:150]).all()
