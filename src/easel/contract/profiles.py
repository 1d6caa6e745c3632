"""The profiles (gpt-image, dall-e-2, dall-e-3), OpenAI's tables for each, and a spec's resolved surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..settings import ModelSpec

Profile = Literal["gpt-image", "dall-e-2", "dall-e-3"]

#: OpenAI's own size lists, in the order its error messages name them.
STRICT_SIZES: dict[Profile, tuple[str, ...]] = {
    "gpt-image": ("1024x1024", "1024x1536", "1536x1024"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
}
#: What a lenient model accepts unless the operator lists its own sizes.
LENIENT_SIZES: dict[Profile, tuple[str, ...]] = {
    "gpt-image": ("256x256", "512x512", "1024x1024", "1024x1536", "1536x1024"),
    "dall-e-2": STRICT_SIZES["dall-e-2"],
    "dall-e-3": STRICT_SIZES["dall-e-3"],
}
DEFAULT_QUALITY: dict[Profile, str] = {"gpt-image": "medium", "dall-e-2": "standard", "dall-e-3": "standard"}
PROMPT_LIMIT: dict[Profile, int] = {"gpt-image": 32000, "dall-e-2": 1000, "dall-e-3": 4000}
QUALITIES: dict[Profile, tuple[str, ...]] = {
    "gpt-image": ("low", "medium", "high", "auto"),
    "dall-e-2": ("standard", "auto"),
    "dall-e-3": ("standard", "hd", "auto"),
}


def profile_for(model_id: str) -> Profile:
    """The profile a model id gets when the operator names none (CONTRACT §0)."""
    if model_id == "dall-e-2":
        return "dall-e-2"
    if model_id == "dall-e-3":
        return "dall-e-3"
    return "gpt-image"


def parse_size(size: str) -> tuple[int, int] | None:
    """`WIDTHxHEIGHT` as two positive ints, or None when the text is not a size."""
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        return None
    w, h = int(width), int(height)
    return (w, h) if w > 0 and h > 0 else None


@dataclass(frozen=True)
class Surface:
    """What a served model shows of OpenAI's API: its profile, strictness, sizes and defaults."""

    profile: Profile
    strict: bool
    #: The concrete sizes it accepts, in the order messages list them.
    sizes: tuple[str, ...]
    #: What `size=auto` resolves to (for generations).
    default_size: str
    #: What `quality=auto` resolves to.
    default_quality: str

    @property
    def gpt(self) -> bool:
        return self.profile == "gpt-image"

    @classmethod
    def of(cls, spec: ModelSpec) -> Surface:
        """The surface a model's spec asks for; ValueError when its defaults are not allowed."""
        profile = spec.profile or profile_for(spec.id)
        if spec.strict:
            sizes = STRICT_SIZES[profile]
        else:
            sizes = tuple(spec.sizes) if spec.sizes else LENIENT_SIZES[profile]
        if spec.default_size and spec.default_size not in sizes:
            raise ValueError(
                f"model {spec.id!r}: default_size {spec.default_size!r} is not one of {list(sizes)}"
            )
        default_size = spec.default_size or ("1024x1024" if "1024x1024" in sizes else sizes[0])
        return cls(
            profile=profile,
            strict=spec.strict,
            sizes=sizes,
            default_size=default_size,
            default_quality=spec.default_quality or DEFAULT_QUALITY[profile],
        )
