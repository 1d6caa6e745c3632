"""Today's Images API (CONTRACT §8) through openai-python 3.57's typed arguments, strict and lenient."""

from __future__ import annotations

import base64
import io
import math
import xml.etree.ElementTree as ET
from typing import Any, Literal

import numpy as np
import openai
import pytest
from openai.types import ImageGenCompletedEvent
from PIL import Image

from easel.contract.catalogue import MODELS
from tests.conftest import sdk
from tests.helpers import Server, decode, items, markup_png, mask_png, noisy_png, png, refusal

pytestmark = pytest.mark.slow
FREE = ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"]
SVG_NS = "{http://www.w3.org/2000/svg}"


def image_of(result: openai.types.ImagesResponse) -> Image.Image:
    return decode(base64.b64decode(items(result)[0].b64_json or ""))


# -- models, sizes, qualities --------------------------------------------------------------


def test_every_id_is_listed_with_its_shutdown_date(today_server: Server) -> None:
    listed = {m.id: m for m in sdk(today_server).models.list()}
    served = set(listed)
    assert served <= set(MODELS)
    for model_id, entry in listed.items():
        assert entry.shutdown_date == MODELS[model_id].shutdown_date, model_id
        extra = entry.model_extra or {}
        assert (extra["mirrors"], extra["served_by"]) == (model_id, "gpt-image-2.6-sunburst")
    assert listed["gpt-image-1"].shutdown_date == "2026-10-23"
    assert listed["gpt-image-2.6-sunburst"].shutdown_date is None


@pytest.mark.parametrize("model", FREE)
def test_free_sizes_return_what_was_asked(today_server: Server, model: str) -> None:
    result = sdk(today_server).images.generate(model=model, prompt="a wide harbour", size="1536x864")
    assert result.size == "1536x864"
    assert image_of(result).size == (1536, 864)


def test_stream_events_carry_the_free_size(today_server: Server) -> None:
    events = list(sdk(today_server).images.generate(model="gpt-image-2", prompt="x", size="1536x864",
                                                    stream=True, partial_images=1))  # fmt: skip
    assert [e.size for e in events] == ["1536x864", "1536x864"]
    assert decode(base64.b64decode(events[-1].b64_json)).size == (1536, 864)


def test_markup_must_match_the_image_as_its_exif_shows_it(today_server: Server) -> None:
    """A photo stored 1024x768 with orientation 6 is seen as 768x1024: its markup must be too."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (768, 1024, 3), dtype=np.uint8)).save(
        buf, "JPEG", exif=exif
    )
    photo = ("p.jpg", buf.getvalue(), "image/jpeg")
    client = sdk(today_server)
    as_seen = ("k.png", markup_png((768, 1024), (10, 10, 90, 90)), "image/png")
    as_stored = ("k.png", markup_png((1024, 768), (10, 10, 90, 90)), "image/png")
    assert items(client.images.edit(image=photo, prompt="x", size="1024x1536", markup=as_seen))
    stored = refusal(lambda: client.images.edit(image=photo, prompt="x", markup=as_stored))
    assert stored["param"] == "markup"
    assert "does not match image size 768x1024" in stored["message"]


def test_fixed_size_models_keep_their_list_in_strict_mode(today_strict_server: Server) -> None:
    client = sdk(today_strict_server)
    error = refusal(lambda: client.images.generate(model="gpt-image-1.5", prompt="x", size="1536x864"))
    assert error["message"] == (
        "Invalid value: '1536x864'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'."
    )


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("1792x936", "Invalid size '1792x936'. Width and height must both be divisible by 16."),
        ("9:16", "Invalid size '9:16'. Expected WIDTHxHEIGHT, for example '1824x1024'."),
        ("3840x1024", "Invalid size '3840x1024'. The aspect ratio must be between 1:3 and 3:1."),
        ("4096x2048", "Invalid size '4096x2048'. The longest edge must be at most 3840 pixels."),
        (
            "512x512",
            "Invalid size '512x512'. Width times height must be between 655360 and 8294400 pixels; "
            "512x512 is 262144.",
        ),
    ],
)
def test_the_2x_size_rule_speaks_openais_words(today_strict_server: Server, size: str, message: str) -> None:
    client = sdk(today_strict_server)
    error = refusal(lambda: client.images.generate(model="gpt-image-2", prompt="x", size=size))
    assert (error["type"], error["code"], error["param"], error["message"]) == (
        "image_generation_user_error",
        "invalid_value",
        "size",
        message,
    )


@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_xhigh_and_max(
    today_server: Server, quality: Literal["xhigh", "max"], request: pytest.FixtureRequest
) -> None:
    client = sdk(today_server)
    for model in ("gpt-image-2.5-sunburst", "gpt-image-2.6-flare"):
        assert client.images.generate(model=model, prompt="x", quality=quality).quality == quality
    if request.node.callspec.params["today_server"] == "today_strict":  # gpt-image-2 has neither
        error = refusal(lambda: client.images.generate(model="gpt-image-2", prompt="x", quality=quality))
        assert (error["param"], error["code"]) == ("quality", "invalid_value")


def test_higher_quality_and_complexity_paint_more(today_server: Server) -> None:
    client = sdk(today_server)

    def picture(**kwargs: Any) -> np.ndarray:
        result = client.images.generate(model="gpt-image-2.6-sunburst", prompt="red blue shapes",
                                        size="1024x1024", extra_body={"seed": 3}, **kwargs)  # fmt: skip
        return np.asarray(image_of(result).convert("RGB"), dtype=np.int16)

    def busy(image: np.ndarray) -> float:  # how much edge there is: more shapes, more edges
        return float(np.abs(np.diff(image, axis=1)).mean())

    assert busy(picture(complexity="high")) > busy(picture(complexity="low"))
    assert busy(picture(quality="max")) > busy(picture(quality="low"))


def test_complexity_is_refused_by_name_where_openai_has_none(today_strict_server: Server) -> None:
    client = sdk(today_strict_server)
    error = refusal(
        lambda: client.images.generate(model="gpt-image-2.5-flare", prompt="x", complexity="high")
    )
    assert (error["code"], error["param"]) == ("invalid_value", "complexity")
    assert "gpt-image-2.6-sunburst" in error["message"], "the message says which models have it"


@pytest.mark.parametrize(
    ("model", "fidelity", "ok"),
    [
        ("gpt-image-1.5", "high", True),
        ("gpt-image-1.5", "low", True),
        ("gpt-image-1-mini", "low", True),
        ("gpt-image-1-mini", "high", False),
        ("gpt-image-2", "low", False),
        ("gpt-image-2.6-flare", "high", False),
    ],
)
def test_input_fidelity_per_model(
    today_strict_server: Server, model: str, fidelity: Literal["high", "low"], ok: bool
) -> None:
    client = sdk(today_strict_server)

    def call() -> Any:
        return client.images.edit(model=model, image=("i.png", noisy_png(), "image/png"), prompt="x",
                                  input_fidelity=fidelity)  # fmt: skip

    if ok:
        assert items(call())
        return
    error = refusal(call)
    assert error["param"] == "input_fidelity"
    if model.startswith("gpt-image-2"):
        assert "omit this parameter" in error["message"]


# -- safety identifiers ---------------------------------------------------------------------


def test_the_safety_identifier_is_echoed(today_server: Server) -> None:
    client = sdk(today_server)
    both = client.images.generate(prompt="x", size="1024x1024", safety_identifier="hash-1", user="legacy")
    assert both.safety_identifier == "hash-1"
    assert client.images.generate(prompt="x", size="1024x1024", user="legacy").safety_identifier == "legacy"
    empty = client.images.generate(prompt="x", size="1024x1024", safety_identifier="", user="legacy")
    assert empty.safety_identifier == "legacy", "an empty safety_identifier falls back to user"
    assert client.images.generate(prompt="x", size="1024x1024").safety_identifier is None
    events = list(client.images.generate(prompt="x", size="1024x1024", stream=True, partial_images=1,
                                         safety_identifier="hash-2"))  # fmt: skip
    completed = [e for e in events if isinstance(e, ImageGenCompletedEvent)]
    assert [e.safety_identifier for e in completed] == ["hash-2"]


# -- GIF output -----------------------------------------------------------------------------


def test_gif_has_the_frames_and_delays_asked_for(today_server: Server) -> None:
    result = sdk(today_server).images.generate(
        model="gpt-image-2.6-sunburst", prompt="a bouncing red ball", size="1024x1024", output_format="gif",
        frame_count=5, frame_duration_ms=123,
    )  # fmt: skip
    assert result.output_format == "gif"
    gif = Image.open(io.BytesIO(base64.b64decode(items(result)[0].b64_json or "")))
    count = getattr(gif, "n_frames", 1)
    assert (gif.format, count) == ("GIF", 5)
    frames = []
    for index in range(count):
        gif.seek(index)
        assert gif.info["duration"] == 120, "rounded to 10 ms"
        frames.append(gif.convert("RGB").tobytes())
    assert len(set(frames)) == 5, "every frame is a later stage of the painting"


def test_a_transparent_gif_keeps_its_transparency(today_server: Server) -> None:
    result = sdk(today_server).images.generate(prompt="a red ball", output_format="gif", frame_count=2,
                                               background="transparent")  # fmt: skip
    gif = Image.open(io.BytesIO(base64.b64decode(items(result)[0].b64_json or "")))
    assert result.background == "transparent"
    assert "transparency" in gif.info
    assert gif.convert("RGBA").getchannel("A").getextrema()[0] == 0, "the background shows through"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"stream": True}, "stream"),
        ({"stream": True, "partial_images": 2}, "stream"),
        ({"output_compression": 80}, "output_compression"),
    ],
)
def test_gif_refusals_name_the_field(today_server: Server, kwargs: dict[str, Any], param: str) -> None:
    client = sdk(today_server)
    error = refusal(lambda: client.images.generate(prompt="x", output_format="gif", **kwargs))
    assert error["param"] == param


def test_gif_edits_take_no_mask_and_frames_need_gif(today_server: Server) -> None:
    client = sdk(today_server)
    mask = ("m.png", mask_png((256, 256), (0, 0, 64, 64)), "image/png")
    masked = refusal(
        lambda: client.images.edit(
            image=("i.png", noisy_png(), "image/png"), mask=mask, prompt="x", output_format="gif"
        )
    )
    assert masked["param"] == "mask"
    assert refusal(lambda: client.images.generate(prompt="x", frame_count=4))["param"] == "frame_count"


# -- SVG output -----------------------------------------------------------------------------


def test_svg_is_a_document_of_the_same_scene(today_server: Server) -> None:
    client = sdk(today_server)
    request: dict[str, Any] = {"model": "gpt-image-2.6-sunburst", "prompt": "a red disc over a blue sea",
                               "size": "1024x1024", "extra_body": {"seed": 21}}  # fmt: skip
    author: Any = {"model": "author-7", "reasoning": {"effort": "low"}}
    vector = client.images.generate(output_format="svg", svg=author, **request)
    raster = np.asarray(image_of(client.images.generate(**request)).convert("RGB"), dtype=np.int16)
    assert vector.output_format == "svg"
    assert vector.svg_usage is not None
    assert (vector.svg_usage.model, vector.svg_usage.reasoning_tokens) == ("author-7", 256)
    document = base64.b64decode(items(vector)[0].b64_json or "").decode()
    root = ET.fromstring(document)  # noqa: S314 - this server's own document
    assert root.tag == f"{SVG_NS}svg"
    assert (root.get("width"), root.get("height")) == ("1024", "1024")
    assert any(t.text == "a red disc over a blue sea" for t in root.iter(f"{SVG_NS}text"))
    shapes = [e for e in root if e.tag in (f"{SVG_NS}circle", f"{SVG_NS}rect", f"{SVG_NS}polygon")]
    painted = [_centre(e) for e in shapes[1:]]  # after the background
    # Where no later shape covers a shape's centre, the raster shows that shape's colour there.
    checked = 0
    for i, (x, y, _, fill) in enumerate(painted):
        covered = any(math.dist((x, y), (x2, y2)) <= r2 for x2, y2, r2, _ in painted[i + 1 :])
        if covered or not (0 <= x < 1024 and 0 <= y < 900) or not fill:  # the caption runs along the bottom
            continue
        expected = [int(fill[k : k + 2], 16) for k in (1, 3, 5)]
        assert np.abs(raster[int(y), int(x)] - expected).max() <= 3, (x, y, fill)
        checked += 1
    assert checked >= 3


def _centre(element: ET.Element) -> tuple[float, float, float, str]:
    """A shape's centre, a radius that covers it, and its fill colour ('' for an outline)."""
    fill = element.get("fill", "")
    fill = "" if fill in ("none", "url(#bg)") else fill
    if element.tag.endswith("circle"):
        r = float(element.get("r", 0)) + float(element.get("stroke-width", 0))
        return float(element.get("cx", 0)), float(element.get("cy", 0)), r, fill
    if element.tag.endswith("rect"):
        x, y, w = float(element.get("x", 0)), float(element.get("y", 0)), float(element.get("width", 0))
        return x + w / 2, y + w / 2, w * 0.75, fill
    points = [tuple(map(float, p.split(","))) for p in (element.get("points") or "").split()]
    cx, cy = sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)
    return cx, cy, max(math.dist((cx, cy), p) for p in points), fill


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"n": 2}, "n"), ({"stream": True}, "stream"), ({"output_compression": 50}, "output_compression")],
)
def test_svg_refusals_name_the_field(today_server: Server, kwargs: dict[str, Any], param: str) -> None:
    client = sdk(today_server)
    assert (
        refusal(lambda: client.images.generate(prompt="x", output_format="svg", **kwargs))["param"] == param
    )


def test_multipart_svg_fields_nest(today_server: Server) -> None:
    """`svg[reasoning][effort]` arrives as a form field and is checked as the nested field it names."""
    client = sdk(today_server)
    lots: Any = {"model": "a", "reasoning": {"effort": "lots"}}  # not an effort the SDK's types know
    error = refusal(
        lambda: client.images.edit(
            image=("i.png", noisy_png(), "image/png"), prompt="x", output_format="svg", svg=lots
        )
    )
    assert error["param"] == "svg.reasoning.effort"


# -- markup edits ---------------------------------------------------------------------------


def test_markup_edits_repaint_only_near_the_marks(today_server: Server) -> None:
    source = noisy_png((1024, 1024), seed=4)
    result = sdk(today_server).images.edit(
        model="gpt-image-2.6-sunburst",
        image=("i.png", source, "image/png"),
        prompt="a cat",
        markup=("k.png", markup_png((1024, 1024), (200, 200, 280, 600)), "image/png"),
        size="1024x1024",
    )
    out = np.asarray(image_of(result).convert("RGB"), dtype=np.int16)
    original = np.asarray(decode(source).convert("RGB"), dtype=np.int16)
    far = np.ones((1024, 1024), dtype=bool)
    far[160:640, 160:320] = False  # the stroke, and a margin around it
    assert np.array_equal(out[far], original[far]), "pixels away from the marks come back unchanged"
    assert np.abs(out[200:600, 200:280] - original[200:600, 200:280]).mean() > 10, "the marked region changed"


@pytest.mark.parametrize(
    ("markup", "extra", "param"),
    [
        (
            markup_png((256, 256), (10, 10, 50, 50)),
            {"mask": ("m.png", mask_png((256, 256), (0, 0, 9, 9)), "image/png")},
            "markup",
        ),
        (png((256, 256), "RGBA", (255, 0, 0, 255)), {}, "markup"),  # nothing transparent
        (markup_png((128, 128), (10, 10, 50, 50)), {}, "markup"),  # another size
        (png((256, 256)), {}, "markup"),  # no alpha at all
    ],
    ids=["with-mask", "opaque", "size", "no-alpha"],
)
def test_markup_refusals(today_server: Server, markup: bytes, extra: dict[str, Any], param: str) -> None:
    client = sdk(today_server)
    error = refusal(lambda: client.images.edit(image=("i.png", noisy_png(), "image/png"), prompt="x",
                                               markup=("k.png", markup, "image/png"), **extra))  # fmt: skip
    assert error["param"] == param


def test_markup_is_a_2x_feature_in_strict_mode(today_strict_server: Server) -> None:
    client = sdk(today_strict_server)
    markup = ("k.png", markup_png((256, 256), (10, 10, 50, 50)), "image/png")
    for model in ("gpt-image-2", "gpt-image-1.5"):

        def edit(model: str = model) -> object:
            return client.images.edit(
                model=model, image=("i.png", noisy_png(), "image/png"), prompt="x", markup=markup
            )

        error = refusal(edit)
        assert (error["param"], error["code"]) == ("markup", "invalid_value")
    image = ("i.png", noisy_png(), "image/png")
    ok = client.images.edit(model="gpt-image-2.5-flare", image=image, prompt="x", markup=markup)
    assert items(ok)


# -- defaults -------------------------------------------------------------------------------


def test_an_omitted_model_defaults_per_endpoint(today_server: Server) -> None:
    client = sdk(today_server)
    generated = client.images.generate(prompt="x")
    assert generated.size == "1024x1024", "the newest GPT model"
    assert generated.usage is not None
    varied = client.images.create_variation(image=("i.png", png((256, 256)), "image/png"), size="256x256")
    assert varied.size is None, "dall-e-2, as OpenAI documented: no gpt-image fields"
    assert items(varied)[0].url, "dall-e-2 answers with a URL by default"
