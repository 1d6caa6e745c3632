"""One served id's rules: its tables, and a request validated, decoded and resolved into a Plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image

from .. import imaging
from ..errors import APIError, BadRequestError
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
from .catalogue import MODELS, parse_size
from .params import Param, first_unknown, validate
from .profiles import Surface
from .responses import Usage
from .tables import FILE_PARTS, table

if TYPE_CHECKING:
    from ..settings import ModelSpec

MB = 1024 * 1024
#: GIF output's frames when `frame_count` is not given.
DEFAULT_FRAMES = 9


@dataclass(frozen=True)
class Plan:
    """A validated request: the job for the backend and what the service does with its result."""

    job: Job
    delivery: Delivery
    usage: Usage


def _having(field: str) -> str:
    """The OpenAI models that have a field, for messages that teach."""
    if field == "complexity":
        ids = [m.id for m in MODELS.values() if m.rules.complexity]
    else:
        ids = [m.id for m in MODELS.values() if m.rules.markup and "-20" not in m.id]
    return ", ".join(ids)


class ModelRules:
    """The parameter tables of one served id, built once from its spec, id and capabilities."""

    def __init__(self, spec: ModelSpec, caps: Capabilities, model_id: str | None = None) -> None:
        self.spec = spec
        self.caps = caps
        self.surface = Surface.of(spec, model_id)
        self.id = self.surface.id
        self.profile = self.surface.profile
        self.strict = spec.strict
        self._tables = {
            (op, json): table(self.surface, caps, op, json=json)
            for op in ("generations", "edits", "variations")
            for json in (False, True)
        }

    # -- which operations this id serves --------------------------------------------------

    def check_operation(self, op: Operation, *, json: bool = False) -> None:
        """A 400 (OpenAI's wording where it has one) when this id does not serve `op`."""
        model = self.id
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
                f"The model '{model}' does not support image {op}.", code="invalid_value", param="model"
            )

    def serves(self, op: Operation) -> bool:
        """Whether this id answers `op` at all (a multipart request of it)."""
        try:
            self.check_operation(op)
        except APIError:
            return False
        return True

    def params(self, op: Operation, *, json: bool = False) -> dict[str, Param]:
        return self._tables[(op, json)]

    # -- a request into a Plan ------------------------------------------------------------

    def plan(
        self,
        op: Operation,
        raw: Mapping[str, Any],
        files: Mapping[str, Sequence[Upload]],
        *,
        from_form: bool,
        json: bool,
        limits: Limits,
        reserve: Callable[[int], None] | None = None,
    ) -> Plan:
        """Validate everything, decode the uploads, and resolve every `auto`; `reserve` is told
        how many pixels the uploads decode to, before any is decoded, and may refuse."""
        self.check_operation(op)
        fields = self.params(op, json=json)
        parts = [p for p in FILE_PARTS[op] if p != "markup" or self.surface.gpt]
        for name in raw:
            if name in parts:
                raise messages.invalid_type(name, "a file", "a string")
        unknown = first_unknown(raw, fields) or first_unknown([n for n in files if n not in parts], {})
        if unknown is not None:
            raise messages.unknown_parameter(unknown)
        v = validate(fields, raw, from_form=from_form)
        images, mask, markup = self._images(op, files, limits, json, reserve)
        return self._resolve(op, v, images, mask, markup)

    def _images(
        self,
        op: Operation,
        files: Mapping[str, Sequence[Upload]],
        limits: Limits,
        json: bool,
        reserve: Callable[[int], None] | None,
    ) -> tuple[list[Image.Image], Image.Image | None, Image.Image | None]:
        if op == "generations":
            return [], None, None
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
                f"Invalid '{name}': the model '{self.id}' takes at most {most} input image(s) "
                f"and got {len(uploads)}; its pipeline has no reference-image input for the others.",
                code="array_above_max_length",
                param=name,
            )
        if len(uploads) > most:
            raise messages.array_too_long(name, most, len(uploads))
        pixels = self._check_total(uploads, files, limits)
        if reserve is not None:
            reserve(pixels)
        image_limits = Limits(
            max_bytes=min(limits.max_bytes, (4 if dalle else 50) * MB), max_pixels=limits.max_pixels
        )
        small = Limits(max_bytes=min(limits.max_bytes, 4 * MB), max_pixels=limits.max_pixels)
        images = [self._decode(u, image_limits) for u in uploads]
        if dalle:
            self._dalle_image(images[0], needs_alpha=op == "edits" and not files.get("mask"))
        mask = self._mask(files.get("mask", ()), images[0], small)
        markup = self._markup(files.get("markup", ()), images[0], image_limits, mask is not None)
        return images, mask, markup

    @staticmethod
    def _check_total(uploads: Sequence[Upload], files: Mapping[str, Sequence[Upload]], limits: Limits) -> int:
        """What a request's images decode to, added up from their headers, before decoding any
        (an image whose header cannot be read fails its decoding)."""
        most = limits.max_total_pixels
        every = [*uploads, *files.get("mask", ()), *files.get("markup", ())]
        total = sum(w * h for w, h in filter(None, map(imaging.dimensions, every)))
        if most is not None and total > most:
            raise messages.image_too_large(
                every[0].param,
                f"the request's images have {total} pixels in all, decoded; the limit is {most} "
                "pixels a request. Send fewer or smaller images.",
            )
        return total

    def _mask(self, masks: Sequence[Upload], first: Image.Image, limits: Limits) -> Image.Image | None:
        if not masks:
            return None
        if len(masks) > 1:
            raise messages.invalid_mask("only one mask may be given")
        mask = self._decode(masks[0], limits)
        if mask.format != "PNG" or not imaging.has_alpha(mask):
            raise messages.invalid_mask("mask image missing alpha channel")
        if mask.size != first.size:
            raise messages.invalid_mask("mask size does not match image size")
        return imaging.to_rgba(mask)

    def _markup(
        self, parts: Sequence[Upload], first: Image.Image, limits: Limits, with_mask: bool
    ) -> Image.Image | None:
        """A transparent PNG of the first image's size (after EXIF orientation), never with a mask."""
        if not parts:
            return None
        if not self.surface.markup:
            raise messages.not_supported(
                self.id, "markup", f"only {_having('markup')} take markup; send a mask instead."
            )
        if not self.caps.markup:
            raise messages.not_supported(
                self.id, "markup", f"its {self.spec.backend} backend cannot follow markup."
            )
        if with_mask:
            raise messages.cannot_combine("markup", "markup cannot be combined with mask; send one of them.")
        if len(parts) > 1:
            raise messages.invalid_markup("only one markup image may be given")
        markup = self._decode(parts[0], limits)
        if markup.format != "PNG" or not imaging.has_alpha(markup):
            raise messages.invalid_markup("markup must be a PNG with an alpha channel")
        markup = imaging.to_rgba(markup)
        lowest, _ = markup.getchannel("A").getextrema()
        if lowest != 0:
            raise messages.invalid_markup(
                "markup must contain transparent pixels (alpha 0) where the image is kept"
            )
        if markup.size != first.size:
            raise messages.invalid_markup(
                f"markup size {markup.width}x{markup.height} does not match "
                f"image size {first.width}x{first.height}"
            )
        return markup

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
        self,
        op: Operation,
        v: dict[str, Any],
        images: list[Image.Image],
        mask: Image.Image | None,
        markup: Image.Image | None,
    ) -> Plan:
        gpt = self.surface.gpt
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
        self._check_new_fields(v, fmt, compression, mask is not None)
        size = v["size"]
        if size == "auto":
            size = self._auto_size(images[0] if images else None)
        width, height = parse_size(size) or (1024, 1024)
        quality = v.get("quality") or "auto"
        if quality == "auto":
            quality = self.surface.default_quality
        stream = bool(v.get("stream"))
        partials = int(v.get("partial_images") or 0) if stream else 0
        frames = (v.get("frame_count") or DEFAULT_FRAMES) if fmt == "gif" else 1
        render = Render(
            model=self.id,
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
            complexity=v.get("complexity"),
            frames=frames,
            vector=fmt == "svg",
        )
        prompt: str = v.get("prompt") or ""
        fidelity: Literal["low", "high"] = v.get("input_fidelity") or "low"
        job: Job
        if op == "generations":
            job = GenerateJob(render=render, prompt=prompt)
        elif op == "edits":
            job = EditJob(
                render=render,
                prompt=prompt,
                images=tuple(images),
                mask=mask,
                input_fidelity=fidelity,
                markup=markup,
            )
        else:
            job = VariationJob(render=render, image=images[0])
        svg = v.get("svg") or {}
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
            safety_identifier=v.get("safety_identifier") or v.get("user") or None,
            frame_duration_ms=max(10, round((v.get("frame_duration_ms") or 200) / 10) * 10),
            svg_author=svg.get("model"),
            svg_effort=(svg.get("reasoning") or {}).get("effort"),
        )
        cost = usage.usage(
            prompt, [im.size for im in images], fidelity, quality, width, height, render.n, frames=frames
        )
        return Plan(job=job, delivery=delivery, usage=cost)

    def _check_new_fields(self, v: dict[str, Any], fmt: str, compression: int | None, masked: bool) -> None:
        """CONTRACT §8's fields: what this id's mirror lacks, what does not go together, and what
        its backend cannot do, each refused by name before any work."""
        s, caps, model = self.surface, self.caps, self.id
        if v.get("complexity") is not None and not s.complexity:
            raise messages.not_supported(model, "complexity", f"only {_having('complexity')} plan with it.")
        fidelity = v.get("input_fidelity")
        if fidelity is not None and fidelity not in s.input_fidelity:
            if not s.input_fidelity:
                raise messages.not_supported(model, "input_fidelity", "omit this parameter for this model.")
            raise messages.invalid_value("input_fidelity", fidelity, s.input_fidelity)
        animated, vector = fmt == "gif", fmt == "svg"
        for name, given in (("stream", v.get("stream")), ("partial_images", v.get("partial_images"))):
            if (animated or vector) and given:
                raise messages.cannot_combine(
                    name, f"{fmt.upper()} output cannot be streamed or sent in parts."
                )
        if (animated or vector) and compression is not None:
            raise messages.cannot_combine("output_compression", f"{fmt.upper()} output takes no compression.")
        if animated and masked:
            raise messages.cannot_combine("mask", "GIF output cannot be an edit with a mask.")
        if vector and v["n"] > 1:
            raise messages.cannot_combine("n", "SVG output is one image per request; send n=1.")
        for name in ("frame_count", "frame_duration_ms"):
            if v.get(name) is not None and not animated:
                raise messages.cannot_combine(name, "it is only supported with output_format=gif.")
        if v.get("svg") and not vector:
            raise messages.cannot_combine("svg", "it is only supported with output_format=svg.")
        backend = self.spec.backend
        if fmt not in caps.output_formats:
            made = ", ".join(sorted(caps.output_formats))
            raise messages.not_supported(
                model, "output_format", f"its {backend} backend cannot make {fmt} output; it makes {made}."
            )
        if v.get("complexity") is not None and not caps.complexity:
            raise messages.not_supported(
                model, "complexity", f"its {backend} backend has no planning effort to set."
            )

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
