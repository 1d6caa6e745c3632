"""The parameter table of one served id and operation: which fields exist, their types and limits."""

from __future__ import annotations

from ..jobs import STILL_FORMATS, Capabilities, Operation
from .params import Param
from .profiles import Surface

#: Which files each operation takes, as multipart part names.
FILE_PARTS: dict[Operation, tuple[str, ...]] = {
    "generations": (),
    "edits": ("image", "image[]", "mask", "markup"),
    "variations": ("image",),
}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SVG = Param(
    "svg",
    "object",
    fields=(
        Param("model", "string", max_length=200, doc="The model that authors the SVG."),
        Param("reasoning", "object", fields=(Param("effort", "string", choices=EFFORTS),)),
    ),
    doc="The SVG author and its reasoning effort (output_format=svg).",
)
SIZE_PATTERN = r"^(auto|[0-9]{1,6}x[0-9]{1,6})$"


def table(surface: Surface, caps: Capabilities, op: Operation, *, json: bool) -> dict[str, Param]:
    """Every field `op` takes on this id, in the order they are checked (and errors name them)."""
    gpt = surface.gpt
    fields: list[Param] = []
    if op != "variations":
        fields.append(
            Param("prompt", "string", max_length=surface.prompt_limit, required=True, doc="What to draw.")
        )
    fields.append(Param("model", "string", doc="A served model id."))
    fields.append(
        Param("n", "integer", minimum=1, maximum=1 if surface.profile == "dall-e-3" else 10, default=1)
    )
    fields.append(_size(surface, gpt))
    if surface.profile == "dall-e-3":
        fields.append(Param("style", "string", choices=("vivid", "natural"), default="vivid"))
    if gpt:
        # A variation is a twist of a raster image: it comes back as one, never as an animation or SVG.
        formats = (
            surface.formats if op != "variations" else tuple(f for f in surface.formats if f in STILL_FORMATS)
        )
        background = ("transparent", "opaque", "auto") if caps.transparent_background else ("opaque", "auto")
        fields += [
            Param("quality", "string", choices=surface.qualities, default="auto"),
            Param("background", "string", choices=background, default="auto"),
            Param("output_format", "string", choices=formats, default="png"),
            Param("output_compression", "integer", minimum=0, maximum=100),
        ]
        if op == "generations" or json:
            fields.append(Param("moderation", "string", choices=("low", "auto"), default="auto"))
        if op == "edits":
            fields.append(Param("input_fidelity", "string", choices=("high", "low")))
        if op != "variations":
            fields += [
                Param("stream", "boolean", default=False),
                Param("partial_images", "integer", minimum=0, maximum=3, default=0),
                Param("complexity", "string", choices=("low", "medium", "high"), doc="Planning effort."),
                Param("frame_count", "integer", minimum=2, maximum=16, doc="GIF frames (output_format=gif)."),
                Param("frame_duration_ms", "integer", minimum=1, maximum=655_350, doc="GIF frame delay, ms."),
                SVG,
            ]
    elif op != "variations":
        fields.append(Param("quality", "string", choices=surface.qualities, default="auto"))
    if not gpt or not surface.strict:
        default_format = "b64_json" if gpt else "url"
        fields.append(Param("response_format", "string", choices=("url", "b64_json"), default=default_format))
    fields.append(Param("safety_identifier", "string", doc="Your end user (hashed), for abuse monitoring."))
    fields.append(Param("user", "string", doc="Deprecated: use safety_identifier."))
    fields += _extensions(surface, caps, op)
    return {p.name: p for p in fields}


def _size(surface: Surface, gpt: bool) -> Param:
    """A list of sizes is a choice; a free-size rule is checked in the size's turn, in OpenAI's words."""
    listed = (*surface.sizes, "auto") if gpt else surface.sizes
    default = "auto" if gpt else surface.default_size
    rule = surface.size_rule
    if rule is None:
        return Param("size", "string", choices=listed, default=default)

    def within(size: str) -> None:
        if size not in listed:
            rule.check(size)

    return Param(
        "size", "string", default=default, also=within, pattern=SIZE_PATTERN, doc="WIDTHxHEIGHT, or auto."
    )


def _extensions(surface: Surface, caps: Capabilities, op: Operation) -> list[Param]:
    out = []
    if "seed" in caps.extensions:
        out.append(
            Param("seed", "integer", minimum=0, maximum=2**32 - 1,
                  doc="easel: same seed, prompt and parameters give the same pixels.")
        )  # fmt: skip
    if "negative_prompt" in caps.extensions and op != "variations":
        out.append(
            Param("negative_prompt", "string", max_length=surface.prompt_limit, doc="easel: what to avoid.")
        )
    if "steps" in caps.extensions:
        out.append(
            Param("steps", "integer", minimum=1, maximum=caps.max_steps, doc="easel: denoising steps.")
        )
    if "guidance_scale" in caps.extensions:
        low, high = caps.guidance_range
        out.append(
            Param(
                "guidance_scale", "number", minimum=low, maximum=high, doc="easel: classifier-free guidance."
            )
        )
    return out
