"""PlaceholderBackend: paints prompt-shaped pictures for generations, edits and variations."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar, cast

from PIL import Image, ImageFilter
from pydantic import Field

from ... import errors
from ...jobs import (
    EXTENSIONS,
    STILL_FORMATS,
    Capabilities,
    EditJob,
    GenerateJob,
    Job,
    PreviewSink,
    Render,
    Rendered,
    VariationJob,
)
from ..base import SEED_SPACE, Backend, BackendOptions, StopCheck
from .paint import Brief, Stage, derive_seed, frames, paint, plan, raster, vector

#: Shape count per quality: higher quality paints more, like more diffusion steps.
STROKES = {"low": 6, "medium": 10, "high": 16, "xhigh": 24, "max": 32, "standard": 10, "hd": 16}
#: `complexity` is planning: it scales how many shapes are planned, apart from quality.
PLANNING = {"low": 0.5, "medium": 1.0, "high": 2.0}


class PlaceholderOptions(BackendOptions):
    """Options of `backend = "placeholder"`."""

    caption: bool = Field(True, description="Write the prompt as a caption along the bottom edge.")


class PlaceholderBackend(Backend):
    """Paints prompt-shaped pictures in a few milliseconds; same inputs give identical bytes."""

    Options: ClassVar[type[BackendOptions]] = PlaceholderOptions
    options: PlaceholderOptions

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            operations=frozenset({"generations", "edits", "variations"}),
            transparent_background=True,
            extensions=frozenset(EXTENSIONS),
            max_steps=64,
            guidance_range=(0.0, 30.0),
            output_formats=STILL_FORMATS | {"gif", "svg"},
            complexity=True,
            markup=True,
        )

    def validate(self, job: Job) -> None:
        if job.render.vector and not isinstance(job, GenerateJob):
            raise errors.BadRequestError(
                "The placeholder makes SVG output for generations only: an edit's picture is not a "
                "vector drawing. Ask for png, jpeg or webp.",
                code="invalid_value",
                param="output_format",
            )

    def run(
        self, job: Job, on_preview: PreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[Rendered]:
        base_seed = job.render.seed if job.render.seed is not None else self.default_seed(job)
        for index in range(job.render.n):
            if stop is not None and stop():
                return
            seed = (base_seed + index) % SEED_SPACE
            sink = _numbered(on_preview, index) if on_preview else None
            if isinstance(job, GenerateJob):
                made = self._generate(job, seed, sink)
            elif isinstance(job, EditJob):
                made = self._edit(job, seed, sink)
            else:
                made = Rendered(image=self._vary(job, seed, sink))
            yield replace(made, seed=seed, revised_prompt=_prompt_of(job))

    # -- operations ---------------------------------------------------------------------

    def _brief(self, render: Render, prompt: str, seed: int, transparent: bool) -> Brief:
        saturation = 1.0
        if render.style == "natural":
            saturation = 0.6
        if render.guidance_scale is not None:
            saturation *= min(1.0, 0.3 + render.guidance_scale / 10.0)
        strokes = render.steps or round(
            STROKES.get(render.quality, 10) * PLANNING.get(render.complexity or "", 1.0)
        )
        return Brief(
            prompt=prompt,
            width=render.width,
            height=render.height,
            seed=seed,
            # An animation adds at least one shape a frame, so that no two frames are alike.
            strokes=max(strokes, render.frames),
            transparent=transparent,
            negative_prompt=render.negative_prompt,
            saturation=saturation,
            caption=self.options.caption,
        )

    def _generate(self, job: GenerateJob, seed: int, sink: Stage | None) -> Rendered:
        r = job.render
        scene = plan(self._brief(r, job.prompt, seed, r.background == "transparent"))
        svg = vector(scene) if r.vector else None
        if r.frames > 1:
            animation = frames(scene, r.frames)
            return Rendered(image=animation[-1], frames=tuple(animation), svg=svg)
        return Rendered(image=raster(scene, sink, r.previews), svg=svg)

    def _edit(self, job: EditJob, seed: int, sink: Stage | None) -> Rendered:
        r = job.render
        size = (r.width, r.height)
        base = _fit(job.images[0], size).convert("RGBA")
        area = _edit_area(job, base, size)
        whole = area.getextrema() == (0, 0)
        brief = self._brief(r, job.prompt, seed, r.background == "transparent")
        references = [_fit(im, size).convert("RGBA") for im in job.images[1:]]
        keep = 0.6 if job.input_fidelity == "high" else 0.35

        def repaint(fill: Image.Image) -> Image.Image:
            fill = fill.convert("RGBA")
            for ref in references:  # extra images show through the repainted region
                fill = Image.blend(fill, ref, 0.5 / len(references))
            if whole:  # nothing marked: the whole image is edited, keeping its composition
                return Image.blend(fill, base, keep)
            return Image.composite(fill, base, area)

        if r.frames > 1:
            animation = tuple(_flatten(repaint(f), r.background) for f in frames(plan(brief), r.frames))
            return Rendered(image=animation[-1], frames=animation)
        stage_sink = (lambda canvas: sink(repaint(canvas))) if sink else None
        return Rendered(image=_flatten(repaint(paint(brief, stage_sink, r.previews)), r.background))

    def _vary(self, job: VariationJob, seed: int, sink: Stage | None) -> Image.Image:
        r = job.render
        base = _fit(job.image, (r.width, r.height)).convert("RGB")
        rng = random.Random(seed)
        # A seeded colour twist of the input, then the painter's shapes laid over it lightly.
        shifts = [rng.randint(-40, 40) for _ in range(3)]
        twisted = base.point([min(255, max(0, v + d)) for d in shifts for v in range(256)])
        brief = self._brief(r, "variation", seed, False)
        brief = replace(brief, caption=False, strokes=max(3, brief.strokes // 2))

        def mix(canvas: Image.Image) -> Image.Image:
            return Image.blend(twisted, canvas.convert("RGB"), 0.3)

        stage_sink = (lambda canvas: sink(mix(canvas))) if sink else None
        return mix(paint(brief, stage_sink, r.previews))

    def default_seed(self, job: Job) -> int:
        """Derived from the request, so the same request paints the same picture."""
        r = job.render
        fingerprint: object
        if isinstance(job, VariationJob):
            fingerprint = job.image.resize((8, 8)).tobytes()
        elif isinstance(job, EditJob):
            fingerprint = (job.prompt, [im.resize((8, 8)).tobytes() for im in job.images])
        else:
            fingerprint = job.prompt
        return derive_seed(
            job.operation,
            fingerprint,
            r.size,
            r.quality,
            r.background,
            r.steps,
            r.guidance_scale,
            r.negative_prompt,
            r.style,
        )


def _edit_area(job: EditJob, base: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Where to repaint (255): alpha 0 in the mask; else the markup's strokes (its opaque pixels),
    grown a little so the repaint covers them; else alpha 0 in the image itself (CONTRACT §2)."""
    if job.mask is not None:
        alpha = _fit(job.mask, size, Image.Resampling.NEAREST).getchannel("A")
        return alpha.point(lambda a: 255 if a == 0 else 0)
    if job.markup is not None:
        marks = (
            _fit(job.markup, size, Image.Resampling.NEAREST).getchannel("A").point(lambda a: 255 if a else 0)
        )
        grow = max(1, min(size) // 128)
        return marks.filter(ImageFilter.MaxFilter(2 * grow + 1))
    return base.getchannel("A").point(lambda a: 255 if a == 0 else 0)


def _numbered(on_preview: PreviewSink, image_index: int) -> Stage:
    """Adapt the painter's per-stage callback to the (image, preview index, image) sink."""
    counter = itertools.count()
    return lambda preview: on_preview(image_index, next(counter), preview)


def _prompt_of(job: Job) -> str | None:
    return None if isinstance(job, VariationJob) else job.prompt


def _fit(
    image: Image.Image, size: tuple[int, int], resample: Image.Resampling = Image.Resampling.BICUBIC
) -> Image.Image:
    return image if image.size == size else image.resize(size, resample)


def _flatten(image: Image.Image, background: str) -> Image.Image:
    """Drop the alpha channel when nothing in the picture uses it."""
    lowest, _ = cast(tuple[int, int], image.getchannel("A").getextrema())
    if background == "transparent" or lowest < 255:
        return image
    return image.convert("RGB")
