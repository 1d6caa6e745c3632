"""DiffusersBackend: open image models through Hugging Face diffusers; one model serves every endpoint."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image, ImageChops, ImageFilter

from ... import errors
from ...contract.profiles import Surface, parse_size
from ...errors import BackendConfigError
from ...jobs import Capabilities, EditJob, GenerateJob, Job, PreviewSink, Render, Rendered, VariationJob
from ..base import SEED_SPACE, Backend, BackendOptions, BatchPreviewSink, Part, StopCheck
from . import families
from .loading import Loaded, load, require_packages, resolve_folder
from .options import DiffusersOptions
from .previews import Previewer

log = logging.getLogger("easel.diffusers")

if TYPE_CHECKING:
    from ...settings import ModelSpec

#: What an inpainting checkpoint starts a generation from; the full mask repaints all of it.
NEUTRAL = (127, 127, 127)
#: Where `_call` marks an image the pipeline's safety checker flagged (removed before delivery).
FLAGGED = "easel.flagged"
#: Stable Diffusion's safety checker looks for sexual content (its "NSFW concepts").
SAFETY_CHECKER_CATEGORIES = ("sexual",)


class DiffusersBackend(Backend):
    """Text-to-image for generations, inpainting or image-to-image for edits, image-to-image for variations.

    The weights load once (`from_pretrained`) and the other pipelines share them (`from_pipe`).
    A pipeline is not safe to call from two threads at once, so jobs run one at a time.
    """

    Options: ClassVar[type[BackendOptions]] = DiffusersOptions
    options: DiffusersOptions

    def __init__(self, spec: ModelSpec, options: BackendOptions | None = None) -> None:
        super().__init__(spec, options)
        try:
            require_packages()
            self.folder = resolve_folder(self.options)
            self.info = families.inspect(self.folder)
        except (BackendConfigError, families.PipelineConfigError) as exc:
            raise BackendConfigError(f"model {spec.id!r}: {exc}") from None
        self.surface = Surface.of(spec)
        for size in self.surface.sizes:
            width, height = parse_size(size) or (0, 0)
            problem = self.info.size_problem(width, height)
            if problem:
                raise BackendConfigError(f"model {spec.id!r}: size {size} cannot be served: {problem}")
        rule, multiple = self.surface.size_rule, self.info.size_multiple
        if spec.size_rule is not None and rule is not None and rule.multiple % multiple:
            raise BackendConfigError(
                f"model {spec.id!r}: size_rule.multiple {rule.multiple} cannot be served: "
                f"{self.info.family.name} pipelines need sides that are multiples of {multiple}"
            )
        self.loaded: Loaded | None = None
        self._lock = threading.Lock()

    # -- what this model can do ----------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        extensions = {"seed", "steps"}
        if self.info.guidance:
            extensions.add("guidance_scale")
        if self.info.family.negative_prompt and self.info.guidance:
            extensions.add("negative_prompt")
        return Capabilities(
            operations=frozenset({"generations", "edits", "variations"}),
            transparent_background=False,
            extensions=frozenset(extensions),
            max_steps=self.options.max_steps,
            guidance_range=(0.0, self.options.max_guidance_scale),
            max_input_images=1,
            previews=True,
            complexity=self.options.complexity is not None,
            markup=True,
        )

    @property
    def concurrency(self) -> int:
        return 1

    def validate(self, job: Job) -> None:
        r = job.render
        problem = self.info.size_problem(r.width, r.height)
        if problem:
            raise errors.BadRequestError(
                f"Invalid size '{r.size}' for model '{r.model}': {problem}.",
                code="invalid_value",
                param="size",
            )
        if r.negative_prompt and self._guidance(r) <= 1.0:
            raise errors.BadRequestError(
                f"negative_prompt has no effect on '{r.model}' with guidance_scale "
                f"{self._guidance(r):g}: classifier-free guidance is off at 1 or below. Send a "
                "guidance_scale above 1 with it.",
                code="invalid_value",
                param="negative_prompt",
            )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.loaded = load(self.folder, self.info, self.options)
        if self.options.compile:
            # Compiling happens on the first call: pay it here, not in a client's request.
            width, height = parse_size(self.surface.default_size) or (512, 512)
            render = Render(self.spec.id, 1, width, height, "low", "opaque", seed=0, steps=1)
            list(self.run(GenerateJob(render=render, prompt="warm-up")))

    def close(self) -> None:
        device = self.loaded.device if self.loaded else "cpu"
        self.loaded = None
        _release(device)

    # -- rendering -----------------------------------------------------------------------

    def run(
        self, job: Job, on_preview: PreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[Rendered]:
        loaded = self._loaded()
        r = job.render
        base = r.seed if r.seed is not None else self.default_seed(job)
        seeds = [(base + i) % SEED_SPACE for i in range(r.n)]
        with self._rendering(loaded, r.n, r.size):
            images = self._render(loaded, job, seeds, _StepHooks(on_preview, stop))
        prompt = None if isinstance(job, VariationJob) else job.prompt
        for image, seed in zip(images, seeds, strict=True):
            yield Rendered(image=image, seed=seed, revised_prompt=prompt, moderation=_flagged(image))

    # -- batches of several requests -----------------------------------------------------

    @property
    def default_batch_size(self) -> int:
        return 4

    def batch_key(self, job: Job) -> Hashable | None:
        """Generations and variations that share every pipeline-level setting batch together."""
        if isinstance(job, EditJob) or self.info.inpainting:
            return None
        r = job.render
        steps = self._steps(r)
        return (
            job.operation,
            r.width,
            r.height,
            steps,
            self._guidance(r),
            r.negative_prompt is not None,
            r.previews,
        )

    def run_batch(
        self, parts: Sequence[Part], on_preview: BatchPreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[tuple[int, Rendered]]:
        """One pipeline call for every image of every part, each with its own seeded generator."""
        if len(parts) == 1 or self.batch_key(parts[0].job) is None:
            yield from super().run_batch(parts, on_preview, stop)
            return
        loaded = self._loaded()
        owners = [(number, p.start + i) for number, p in enumerate(parts) for i in range(p.count)]
        jobs = [parts[number].job for number, _ in owners]
        seeds = [
            ((job.render.seed or 0) + index) % SEED_SPACE
            for job, (_, index) in zip(jobs, owners, strict=True)
        ]

        def sink(position: int, partial: int, image: Image.Image) -> None:
            if on_preview is not None:  # a batch position back to its part and image index
                on_preview(*owners[position], partial, image)

        hooks = _StepHooks(sink if on_preview is not None else None, stop)
        r = jobs[0].render
        with self._rendering(loaded, len(jobs), r.size):
            if isinstance(jobs[0], GenerateJob):
                prompts = [j.prompt for j in jobs if isinstance(j, GenerateJob)]
                negatives = [j.render.negative_prompt or "" for j in jobs] if r.negative_prompt else None
                images = self._call(loaded.text2image, r, prompts, seeds, hooks, negatives=negatives)
            else:
                sources = [
                    _fit(j.image, (r.width, r.height)).convert("RGB")
                    for j in jobs
                    if isinstance(j, VariationJob)
                ]
                prompts = [self.options.variation_prompt] * len(jobs)
                strength = self.options.variation_strength
                images = self._call(
                    loaded.image2image, r, prompts, seeds, hooks, image=sources, strength=strength
                )
        for (number, _), job, image, seed in zip(owners, jobs, images, seeds, strict=True):
            prompt = job.prompt if isinstance(job, GenerateJob) else None
            yield number, Rendered(image=image, seed=seed, revised_prompt=prompt, moderation=_flagged(image))

    def _loaded(self) -> Loaded:
        if self.loaded is None:
            raise RuntimeError("the diffusers backend has not been started")
        return self.loaded

    @contextlib.contextmanager
    def _rendering(self, loaded: Loaded, count: int, size: str) -> Iterator[None]:
        """One pipeline at a time, without autograd; out of memory reported as such, then released."""
        import torch

        try:
            with self._lock, torch.inference_mode():
                yield
        except (torch.OutOfMemoryError, MemoryError):
            _release(loaded.device)
            raise errors.GenerationFailedError(
                f"The model '{self.spec.id}' ran out of memory rendering {count} image(s) at {size}. "
                "Try a smaller size or fewer images."
            ) from None

    def _render(self, loaded: Loaded, job: Job, seeds: list[int], hooks: _StepHooks) -> list[Image.Image]:
        r = job.render
        size = (r.width, r.height)
        if isinstance(job, GenerateJob):
            if loaded.text2image is None:  # an inpainting checkpoint: repaint a blank canvas
                blank = Image.new("RGB", size, NEUTRAL)
                return self._inpaint(loaded, r, job.prompt, blank, _full(size), 1.0, seeds, hooks)
            return self._call(loaded.text2image, r, [job.prompt] * len(seeds), seeds, hooks)
        if isinstance(job, VariationJob):
            source = _fit(job.image, size).convert("RGB")
            strength = self.options.variation_strength
            return self._image2image(loaded, r, self.options.variation_prompt, source, strength, seeds, hooks)
        source = _fit(job.images[0], size)
        area = _edit_area(job, size)
        if job.markup is not None:  # sketch-guided: the pipeline sees the strokes and repaints them
            sketched = Image.alpha_composite(source.convert("RGBA"), _fit(job.markup, size)).convert("RGB")
            return self._inpaint(
                loaded, r, job.prompt, sketched, area, self.options.markup_strength, seeds, hooks
            )
        rgb = source.convert("RGB")
        if area.getbbox() is None:  # nothing marked: image-to-image over the whole picture
            strength = getattr(self.options.edit_strength, job.input_fidelity)
            return self._image2image(loaded, r, job.prompt, rgb, strength, seeds, hooks)
        return self._inpaint(loaded, r, job.prompt, rgb, area, 1.0, seeds, hooks)

    def _image2image(
        self,
        loaded: Loaded,
        r: Render,
        prompt: str,
        source: Image.Image,
        strength: float,
        seeds: list[int],
        hooks: _StepHooks,
    ) -> list[Image.Image]:
        if loaded.image2image is None:
            return self._inpaint(loaded, r, prompt, source, _full(source.size), strength, seeds, hooks)
        return self._call(
            loaded.image2image, r, [prompt] * len(seeds), seeds, hooks, image=source, strength=strength
        )

    def _inpaint(
        self,
        loaded: Loaded,
        r: Render,
        prompt: str,
        source: Image.Image,
        area: Image.Image,
        strength: float,
        seeds: list[int],
        hooks: _StepHooks,
    ) -> list[Image.Image]:
        """Repaint `area` (255 = repaint), then put every kept pixel back exactly, with a soft seam."""
        weight = _seam(area, self.options.mask_blur)

        def keep_original(image: Image.Image) -> Image.Image:
            kept = Image.composite(image.convert("RGB"), source, weight)
            kept.info.update(image.info)  # a safety checker's flag stays with the image
            return kept

        out = self._call(
            loaded.inpaint,
            r,
            [prompt] * len(seeds),
            seeds,
            hooks,
            keep_original,
            image=source,
            mask_image=area,
            strength=strength,
        )
        return [keep_original(image) for image in out]

    def _call(
        self,
        pipe: Any,
        r: Render,
        prompts: list[str],
        seeds: list[int],
        hooks: _StepHooks,
        finish: Callable[[Image.Image], Image.Image] | None = None,
        negatives: list[str] | None = None,
        **inputs: Any,
    ) -> list[Image.Image]:
        """One pipeline call, a prompt and a seeded generator per image (batched or not alike)."""
        import torch

        steps = self._steps(r)
        strength = inputs.get("strength", 1.0)
        # Given one input image and a generator per image, a pipeline encodes that image with the
        # first generator only (diffusers' `_encode_vae_image`), so image i would not be what a
        # lone request with seed + i draws. A copy per image gives each its own generator.
        for name in ("image", "mask_image"):
            if isinstance(inputs.get(name), Image.Image):
                inputs[name] = [inputs[name]] * len(seeds)
        kwargs: dict[str, Any] = {
            "prompt": prompts,
            "height": r.height,
            "width": r.width,
            "num_images_per_prompt": 1,
            # Image-to-image runs `strength` of the schedule: ask for enough that `steps` run.
            "num_inference_steps": math.ceil(steps / strength - 1e-9),
            "generator": [torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            "output_type": "pil",
            **inputs,
        }
        if self.info.guidance:
            kwargs["guidance_scale"] = self._guidance(r)
        if negatives is None and r.negative_prompt:
            negatives = [r.negative_prompt] * len(prompts)
        if negatives is not None:
            kwargs["negative_prompt"] = negatives
        if self.options.max_sequence_length and self.info.family.name in ("flux", "sd3"):
            kwargs["max_sequence_length"] = self.options.max_sequence_length
        previewer = None
        if hooks.sink is not None and r.previews:
            previewer = Previewer(
                self.info, self.options.preview, (r.width, r.height), r.previews, hooks.sink, finish
            )
        kwargs["callback_on_step_end"] = hooks.callback(previewer)
        kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
        out = pipe(**kwargs)
        if hooks.stopped_after is not None:
            log.info(
                "model %s: nobody waits for this run any more (gone, or out of time); it stopped "
                "after step %d of %d", self.spec.id, hooks.stopped_after, steps,
            )  # fmt: skip
        images = [_fit(image, (r.width, r.height)).convert("RGB") for image in out.images]
        # Stable Diffusion folders may carry their own safety checker: it blacks out what it
        # flags, and says so. Such an image is refused like any output moderation refusal.
        for image, flagged in zip(images, getattr(out, "nsfw_content_detected", None) or (), strict=False):
            if flagged:
                image.info[FLAGGED] = SAFETY_CHECKER_CATEGORIES
        return images

    def _steps(self, r: Render) -> int:
        """`steps`, else the quality's, scaled by the operator's `complexity` factor if any."""
        if r.steps:
            return r.steps
        steps = self.options.steps.for_quality(r.quality, self.options.max_steps)
        if r.complexity and self.options.complexity is not None:
            factor: float = getattr(self.options.complexity, r.complexity)
            steps = min(self.options.max_steps, max(1, round(steps * factor)))
        return steps

    def _guidance(self, r: Render) -> float:
        if r.guidance_scale is not None:
            return r.guidance_scale
        if self.options.guidance_scale is not None:
            return self.options.guidance_scale
        return self.info.family.default_guidance


@dataclass
class _StepHooks:
    """What happens after each denoising step: previews for the sink, and the stop check."""

    sink: PreviewSink | None
    stop: StopCheck | None
    #: The step after which the run was stopped, once it was.
    stopped_after: int | None = None

    def callback(self, previewer: Previewer | None) -> Callable[..., dict[str, Any]]:
        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if self.stop is not None and self.stop():
                pipe._interrupt = True  # the pipeline skips its remaining steps
                if self.stopped_after is None:
                    self.stopped_after = step + 1
            elif previewer is not None:
                previewer(pipe, step, timestep, kwargs)
            return kwargs

        return on_step


def _flagged(image: Image.Image) -> tuple[str, ...]:
    """The categories `_call` marked the image with, taken off it so no encoder sees them."""
    flagged: tuple[str, ...] = image.info.pop(FLAGGED, ())
    return flagged


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _full(size: tuple[int, int]) -> Image.Image:
    return Image.new("L", size, 255)


def _edit_area(job: EditJob, size: tuple[int, int]) -> Image.Image:
    """How much to repaint per pixel (255 = all): OpenAI's alpha 0 is diffusers' white; markup's
    strokes (its opaque pixels), grown by a VAE cell or so, so the repaint covers them whole."""
    if job.markup is not None:
        marks = job.markup.getchannel("A").point(lambda a: 255 if a else 0)
        marks = marks if marks.size == size else marks.resize(size, Image.Resampling.NEAREST)
        return marks.filter(ImageFilter.MaxFilter(2 * max(4, min(size) // 64) + 1))
    source = job.mask if job.mask is not None else job.images[0]
    if "A" not in source.getbands():
        return Image.new("L", size, 0)
    alpha = source.getchannel("A")
    return ImageChops.invert(alpha if alpha.size == size else alpha.resize(size, Image.Resampling.NEAREST))


def _seam(area: Image.Image, blur: int) -> Image.Image:
    """Blend weight for the result: soft just inside the edit area, exactly 0 outside it."""
    if blur == 0:
        return area
    return ImageChops.multiply(area.filter(ImageFilter.GaussianBlur(blur)), area)


def _release(device: str) -> None:
    """Give back what a failed or finished run left allocated."""
    gc.collect()
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
