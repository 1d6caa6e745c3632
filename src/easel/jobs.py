"""What backends and the service share: what a model can do, the frozen jobs it gets, what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

Operation = Literal["generations", "edits", "variations"]
Background = Literal["transparent", "opaque"]
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
ResponseFormat = Literal["b64_json", "url"]

#: Called by a backend with (image index, preview index, preview) as a render progresses.
PreviewSink = Callable[[int, int, Image.Image], None]

#: Request fields beyond OpenAI's that a backend may honour (CONTRACT §2, easel extensions).
EXTENSIONS = ("seed", "negative_prompt", "steps", "guidance_scale")
#: The still formats every backend's images can be encoded in.
STILL_FORMATS = frozenset({"png", "jpeg", "webp"})


@dataclass(frozen=True)
class Capabilities:
    """What a model can do; the parameter rules refuse anything outside it with a 400."""

    operations: frozenset[Operation]
    transparent_background: bool
    extensions: frozenset[str]
    max_steps: int = 50
    guidance_range: tuple[float, float] = (0.0, 30.0)
    max_input_images: int = 16
    #: Real intermediate previews are available for streaming.
    previews: bool = True
    #: Output formats it can make: stills always; `gif` needs `Rendered.frames`, `svg` `Rendered.svg`.
    output_formats: frozenset[str] = STILL_FORMATS
    #: It honours `complexity` (planning effort, apart from rendering quality).
    complexity: bool = False
    #: It honours `markup` on edits (strokes drawn over the first image to guide the edit).
    markup: bool = False


@dataclass(frozen=True)
class Render:
    """What every operation shares: resolved values only, never `auto`."""

    model: str
    n: int
    width: int
    height: int
    quality: str
    background: Background
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    style: str | None = None
    #: How many intermediate previews the caller wants per image (0 when not streaming).
    previews: int = 0
    #: How strictly prompts and outputs are moderated: `auto` (the default) or the laxer `low`.
    moderation: Literal["auto", "low"] = "auto"
    #: Planning effort (`low`, `medium`, `high`), apart from `quality`; None: the model's default.
    complexity: str | None = None
    #: Frames of an animation (GIF output); 1 for a still image.
    frames: int = 1
    #: An SVG document is wanted (SVG output), beside the raster image.
    vector: bool = False

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class GenerateJob:
    render: Render
    prompt: str
    operation: Operation = field(default="generations", init=False)


@dataclass(frozen=True)
class EditJob:
    """Repaint the edit area of `images[0]`: the mask's alpha-0 pixels, else the markup's strokes
    (its opaque pixels, drawn over the image to guide the edit), else the image's own alpha-0."""

    render: Render
    prompt: str
    images: tuple[Image.Image, ...]
    mask: Image.Image | None
    input_fidelity: Literal["low", "high"] = "low"
    #: RGBA, the size of `images[0]`: strokes where it is opaque, transparent elsewhere.
    markup: Image.Image | None = None
    operation: Operation = field(default="edits", init=False)


@dataclass(frozen=True)
class VariationJob:
    render: Render
    image: Image.Image
    operation: Operation = field(default="variations", init=False)


Job = GenerateJob | EditJob | VariationJob


@dataclass(frozen=True)
class Delivery:
    """How the finished images travel back; never seen by backends."""

    output_format: OutputFormat
    compression: int
    response_format: ResponseFormat
    stream: bool
    partial_images: int
    #: Whether the response carries gpt-image's top-level fields and usage.
    gpt_fields: bool
    #: dall-e-3 items carry `revised_prompt`.
    revised_prompt: bool
    #: Show the used seed on each data[] item (the model supports seeds).
    show_seed: bool
    #: The effective safety identifier (a non-empty `safety_identifier`, else `user`), echoed.
    safety_identifier: str | None = None
    #: GIF output: each frame's delay, in ms (a multiple of 10).
    frame_duration_ms: int = 200
    #: SVG output: the author model and reasoning effort asked for (for `svg_usage`).
    svg_author: str | None = None
    svg_effort: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A backend's result for one image."""

    image: Image.Image
    seed: int | None = None
    revised_prompt: str | None = None
    #: Moderation categories the backend's own checker flagged this image in (empty: none).
    moderation: tuple[str, ...] = ()
    #: An animation's frames, in order (GIF output; `image` is the last one).
    frames: tuple[Image.Image, ...] = ()
    #: The SVG document of the same picture (SVG output).
    svg: str | None = None
