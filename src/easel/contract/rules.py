"""One served model's parameter tables (by profile, strict or lenient), and a request into a Plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from .. import imaging
from ..errors import BadRequestError
from ..imaging import Limits, Upload
from ..jobs import (
    Capabilities,
    Delivery,
    EditJob,
    GenerateJob,
    Job,
    Operation,
    OutputFormat,
    Render,
    VariationJob,
)
from . import messages, usage
from .params import Param, first_unknown, validate
from .profiles import PROMPT_LIMIT, QUALITIES, Surface, parse_size
from .responses import Usage

if TYPE_CHECKING:
    from ..settings import ModelSpec

MB = 1024 * 1024
#: Which files each operation takes, as multipart part names.
FILE_PARTS: dict[Operation, tuple[str, ...]] = {
    "generations": (),
    "edits": ("image", "image[]", "mask"),
    "variations": ("image",),
}


@dataclass(frozen=True)
class Plan:
    """A validated request: the job for the backend and what the service does with its result."""

    job: Job
    delivery: Delivery
    usage: Usage


class ModelRules:
    """The parameter tables of one served model, built once from its spec and capabilities."""

    def __init__(self, spec: ModelSpec, caps: Capabilities) -> None:
        self.spec = spec
        self.caps = caps
        self.surface = Surface.of(spec)
        self.profile = self.surface.profile
        self.strict = spec.strict
        self._tables = {
            (op, json): self._table(op, json)
            for op in ("generations", "edits", "variations")
            for json in (False, True)
        }

    # -- which operations this model serves ----------------------------------------------

    def check_operation(self, op: Operation, *, json: bool = False) -> None:
        """A 400 (OpenAI's wording where it has one) when this model does not serve `op`."""
        model = self.spec.id
        if json and self.profile != "gpt-image":
            raise BadRequestError(
                "JSON edits support GPT image models only; send a multipart/form-data "
                f"request for '{model}'.",
                code="invalid_value",
                param="model",
            )
        if op == "variations" and self.profile != "dall-e-2" and (self.strict or self.profile != "gpt-image"):
            raise messages.value_must_be("model", model, ["dall-e-2"])
        if op == "edits" and self.profile == "dall-e-3":
            raise messages.value_must_be("model", model, ["dall-e-2", "gpt-image-1"])
        if op not in self.caps.operations:
            raise BadRequestError(
                f"The model '{model}' does not support image {op}.",
                code="invalid_value",
                param="model",
            )

    def params(self, op: Operation, *, json: bool = False) -> dict[str, Param]:
        return self._tables[(op, json)]

    # -- tables --------------------------------------------------------------------------

    def _table(self, op: Operation, json: bool) -> dict[str, Param]:
        gpt = self.profile == "gpt-image"
        sizes = self.surface.sizes + (("auto",) if gpt else ())
        default_format = "b64_json" if gpt else "url"
        background = (
            ("transparent", "opaque", "auto") if self.caps.transparent_background else ("opaque", "auto")
        )
        fields: list[Param] = []
        if op != "variations":
            fields.append(
                Param(
                    "prompt",
                    "string",
                    max_length=PROMPT_LIMIT[self.profile],
                    required=True,
                    doc="What to draw.",
                )
            )
        fields.append(Param("model", "string", doc="A served model id."))
        fields.append(
            Param("n", "integer", minimum=1, maximum=1 if self.profile == "dall-e-3" else 10, default=1)
        )
        fields.append(
            Param("size", "string", choices=sizes, default="auto" if gpt else self.surface.default_size)
        )
        if self.profile == "dall-e-3":
            fields.append(Param("style", "string", choices=("vivid", "natural"), default="vivid"))
        if gpt:
            fields += [
                Param("quality", "string", choices=QUALITIES[self.profile], default="auto"),
                Param("background", "string", choices=background, default="auto"),
                Param("output_format", "string", choices=("png", "jpeg", "webp"), default="png"),
                Param("output_compression", "integer", minimum=0, maximum=100),
            ]
            if op == "generations" or json:
                fields.append(Param("moderation", "string", choices=("low", "auto"), default="auto"))
            if op == "edits":
                fields.append(Param("input_fidelity", "string", choices=("high", "low"), default="low"))
            if op != "variations":
                fields += [
                    Param("stream", "boolean", default=False),
                    Param("partial_images", "integer", minimum=0, maximum=3, default=0),
                ]
        elif op != "variations":
            fields.append(Param("quality", "string", choices=QUALITIES[self.profile], default="auto"))
        if not gpt or not self.strict:
            fields.append(
                Param("response_format", "string", choices=("url", "b64_json"), default=default_format)
            )
        fields.append(Param("user", "string"))
        fields += self._extensions(op)
        return {p.name: p for p in fields}

    def _extensions(self, op: Operation) -> list[Param]:
        caps, out = self.caps, []
        if "seed" in caps.extensions:
            out.append(
                Param(
                    "seed",
                    "integer",
                    minimum=0,
                    maximum=2**32 - 1,
                    doc="easel: same seed, prompt and parameters give the same pixels.",
                )
            )
        if "negative_prompt" in caps.extensions and op != "variations":
            out.append(
                Param(
                    "negative_prompt",
                    "string",
                    max_length=PROMPT_LIMIT[self.profile],
                    doc="easel: what to avoid.",
                )
            )
        if "steps" in caps.extensions:
            out.append(
                Param("steps", "integer", minimum=1, maximum=caps.max_steps, doc="easel: denoising steps.")
            )
        if "guidance_scale" in caps.extensions:
            low, high = caps.guidance_range
            out.append(
                Param(
                    "guidance_scale",
                    "number",
                    minimum=low,
                    maximum=high,
                    doc="easel: classifier-free guidance scale.",
                )
            )
        return out

    # -- a request into a Plan -----------------------------------------------------------

    def plan(
        self,
        op: Operation,
        raw: Mapping[str, Any],
        files: Mapping[str, Sequence[Upload]],
        *,
        from_form: bool,
        json: bool,
        limits: Limits,
    ) -> Plan:
        """Validate everything, decode the uploads, and resolve every `auto`."""
        self.check_operation(op)
        table = self.params(op, json=json)
        for name in raw:
            if name in FILE_PARTS[op]:
                raise messages.invalid_type(name, "a file", "a string")
        unknown = first_unknown(raw, table) or first_unknown(
            [name for name in files if name not in FILE_PARTS[op]], {}
        )
        if unknown is not None:
            raise messages.unknown_parameter(unknown)
        v = validate(table, raw, from_form=from_form)
        images, mask = self._images(op, files, limits, json)
        return self._resolve(op, v, images, mask)

    def _images(
        self, op: Operation, files: Mapping[str, Sequence[Upload]], limits: Limits, json: bool
    ) -> tuple[list[Image.Image], Image.Image | None]:
        if op == "generations":
            return [], None
        uploads = [*files.get("image", ()), *files.get("image[]", ())]
        name = "images" if json else "image"
        if not json and (len(uploads) > 1 or files.get("image[]")):
            uploads = [replace(u, param=f"image[{i}]") for i, u in enumerate(uploads)]
        if not uploads:
            raise messages.missing_required(name)
        dalle = self.profile == "dall-e-2"
        most = 1 if dalle or op == "variations" else min(16, self.caps.max_input_images)
        if len(uploads) > most and most < 16 and not dalle and op == "edits":
            raise BadRequestError(
                f"Invalid '{name}': the model '{self.spec.id}' takes at most {most} input image(s) "
                f"and got {len(uploads)}; its pipeline has no reference-image input for the others.",
                code="array_above_max_length",
                param=name,
            )
        if len(uploads) > most:
            raise messages.array_too_long(name, most, len(uploads))
        file_limits = Limits(
            max_bytes=min(limits.max_bytes, (4 if dalle else 50) * MB), max_pixels=limits.max_pixels
        )
        images = [self._decode(u, file_limits) for u in uploads]
        if dalle:
            self._dalle_image(images[0], needs_alpha=op == "edits" and not files.get("mask"))
        masks = files.get("mask", ())
        if not masks:
            return images, None
        if len(masks) > 1:
            raise messages.invalid_mask("only one mask may be given")
        mask = self._decode(
            masks[0], Limits(max_bytes=min(limits.max_bytes, 4 * MB), max_pixels=limits.max_pixels)
        )
        if mask.format != "PNG" or not imaging.has_alpha(mask):
            raise messages.invalid_mask("mask image missing alpha channel")
        if mask.size != images[0].size:
            raise messages.invalid_mask("mask size does not match image size")
        return images, imaging.to_rgba(mask)

    def _decode(self, upload: Upload, limits: Limits) -> Image.Image:
        if self.strict:
            imaging.check_mimetype(upload)
        return imaging.decode(upload, limits)

    @staticmethod
    def _dalle_image(image: Image.Image, *, needs_alpha: bool) -> None:
        if image.format != "PNG":
            raise messages.invalid_input_image(f"format must be PNG, got {image.format}.")
        if image.width != image.height:
            raise messages.invalid_input_image(f"image must be square, got {image.width}x{image.height}.")
        if needs_alpha and not imaging.has_alpha(image):
            raise messages.invalid_input_image(f"format must be in ['RGBA', 'LA', 'L'], got {image.mode}.")

    def _resolve(
        self, op: Operation, v: dict[str, Any], images: list[Image.Image], mask: Image.Image | None
    ) -> Plan:
        gpt = self.profile == "gpt-image"
        fmt: OutputFormat = v.get("output_format") or "png"
        compression: int | None = v.get("output_compression")
        background = v.get("background") or "auto"
        if gpt and fmt == "png" and compression is not None and compression < 100:
            raise messages.invalid_png_compression()
        if background == "transparent" and fmt == "jpeg":
            raise BadRequestError(
                "Transparent background is not supported for the 'jpeg' output format; use 'png' or 'webp'.",
                code="invalid_value",
                param="background",
            )
        size = v["size"]
        if size == "auto":
            size = self._auto_size(images[0] if images else None)
        width, height = parse_size(size) or (1024, 1024)
        quality = v.get("quality") or "auto"
        if quality == "auto":
            quality = self.surface.default_quality
        stream = bool(v.get("stream"))
        partials = int(v.get("partial_images") or 0) if stream else 0
        render = Render(
            model=self.spec.id,
            n=v["n"],
            width=width,
            height=height,
            quality=quality,
            background="transparent" if background == "transparent" else "opaque",
            seed=v.get("seed"),
            steps=v.get("steps"),
            guidance_scale=v.get("guidance_scale"),
            negative_prompt=v.get("negative_prompt"),
            style=v.get("style"),
            previews=partials,
            moderation=v.get("moderation") or "auto",
        )
        prompt: str = v.get("prompt") or ""
        job: Job
        if op == "generations":
            job = GenerateJob(render=render, prompt=prompt)
        elif op == "edits":
            job = EditJob(
                render=render,
                prompt=prompt,
                images=tuple(images),
                mask=mask,
                input_fidelity=v.get("input_fidelity") or "low",
            )
        else:
            job = VariationJob(render=render, image=images[0])
        delivery = Delivery(
            output_format=fmt,
            compression=100 if compression is None else compression,
            response_format=v.get("response_format") or "b64_json",
            stream=stream,
            partial_images=partials,
            gpt_fields=gpt,
            revised_prompt=self.profile == "dall-e-3",
            # Strict models add the extension key only when the client asked for a seed.
            show_seed="seed" in self.caps.extensions and (not self.strict or v.get("seed") is not None),
        )
        cost = usage.usage(
            prompt,
            [im.size for im in images],
            v.get("input_fidelity") or "low",
            quality,
            width,
            height,
            render.n,
        )
        return Plan(job=job, delivery=delivery, usage=cost)

    def _auto_size(self, first: Image.Image | None) -> str:
        """`auto`: the default size, or for edits the allowed size closest to the input's shape."""
        if first is None:
            return self.surface.default_size
        aspect = first.width / first.height
        area = first.width * first.height

        def distance(size: str) -> tuple[float, float]:
            w, h = parse_size(size) or (1, 1)
            return (abs(w / h - aspect), abs(w * h - area))

        return min(self.surface.sizes, key=distance)
