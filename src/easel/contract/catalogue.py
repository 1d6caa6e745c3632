"""OpenAI's image models (openai-python 3.57's `ImageModel`): families, shutdown dates, documented rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import USER_ERROR, BadRequestError

Profile = Literal["gpt-image", "dall-e-2", "dall-e-3"]
Family = Literal["gpt-image-1", "gpt-image-2", "gpt-image-2.5", "gpt-image-2.6", "dall-e-2", "dall-e-3"]

GPT_FORMATS = ("png", "jpeg", "webp")
FORMATS_2X = (*GPT_FORMATS, "gif", "svg")


@dataclass(frozen=True)
class SizeRule:
    """Free `WIDTHxHEIGHT` sizes within limits (CONTRACT §8: the 2.x family's rule)."""

    multiple: int = 16
    #: The longer side over the shorter, at most (3: between 1:3 and 3:1).
    max_aspect: float = 3.0
    max_edge: int = 3840
    min_pixels: int = 655_360
    max_pixels: int = 8_294_400
    #: The size OpenAI's message offers as an example of the format.
    example: str = "1824x1024"

    def problem(self, size: str) -> str | None:
        """OpenAI's message for a size outside the rule (CONTRACT §8), or None when it is inside."""
        dims = parse_size(size)
        if dims is None:
            return f"Invalid size '{size}'. Expected WIDTHxHEIGHT, for example '{self.example}'."
        w, h = dims
        if w % self.multiple or h % self.multiple:
            return f"Invalid size '{size}'. Width and height must both be divisible by {self.multiple}."
        if max(w, h) > self.max_aspect * min(w, h):
            return (
                f"Invalid size '{size}'. The aspect ratio must be between 1:{self.max_aspect:g} "
                f"and {self.max_aspect:g}:1."
            )
        if max(w, h) > self.max_edge:
            return f"Invalid size '{size}'. The longest edge must be at most {self.max_edge} pixels."
        if not self.min_pixels <= w * h <= self.max_pixels:
            return (
                f"Invalid size '{size}'. Width times height must be between {self.min_pixels} and "
                f"{self.max_pixels} pixels; {size} is {w * h}."
            )
        return None

    def check(self, size: str) -> None:
        """OpenAI's 400 (`image_generation_user_error`, `invalid_value`, `size`) for a size outside."""
        problem = self.problem(size)
        if problem is not None:
            raise BadRequestError(problem, code="invalid_value", param="size", type=USER_ERROR)

    def describe(self) -> dict[str, float]:
        return {
            "multiple": self.multiple,
            "max_aspect": self.max_aspect,
            "max_edge": self.max_edge,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }


def parse_size(size: str) -> tuple[int, int] | None:
    """`WIDTHxHEIGHT` as two positive ints, or None when the text is not a size."""
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or len(width) > 6 or len(height) > 6:
        return None
    w, h = int(width), int(height)
    return (w, h) if w > 0 and h > 0 else None


@dataclass(frozen=True)
class FamilyRules:
    """What every model of a family accepts, as OpenAI documents it (documented while live, for
    the retired ones)."""

    family: Family
    profile: Profile
    #: The fixed sizes it accepts, in the order messages list them.
    sizes: tuple[str, ...]
    #: Free sizes within a rule, besides the fixed ones (None: only the fixed ones).
    size_rule: SizeRule | None
    #: Accepted `quality` values, `auto` included where it exists.
    qualities: tuple[str, ...]
    default_quality: str
    formats: tuple[str, ...] = ()
    prompt_limit: int = 32000
    complexity: bool = False
    markup: bool = False


@dataclass(frozen=True)
class OpenAIModel:
    """One id of OpenAI's `ImageModel` list, its family's rules and its own."""

    id: str
    rules: FamilyRules
    #: OpenAI's shutdown date (`YYYY-MM-DD`), None while it is live.
    shutdown_date: str | None
    #: The `input_fidelity` values it accepts; () when OpenAI says to omit the parameter.
    input_fidelity: tuple[str, ...] = ("high", "low")
    #: The ids it is a dated snapshot of, or an alias for (for the models list).
    notes: tuple[str, ...] = field(default=())

    @property
    def family(self) -> Family:
        return self.rules.family

    @property
    def profile(self) -> Profile:
        return self.rules.profile


GPT_SIZES = ("1024x1024", "1024x1536", "1536x1024")
GPT_QUALITIES = ("low", "medium", "high", "auto")
MORE_QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto")
FREE = SizeRule()

ONE = FamilyRules("gpt-image-1", "gpt-image", GPT_SIZES, None, GPT_QUALITIES, "medium", GPT_FORMATS)
TWO = FamilyRules("gpt-image-2", "gpt-image", GPT_SIZES, FREE, GPT_QUALITIES, "medium", FORMATS_2X)
TWO_FIVE = FamilyRules(
    "gpt-image-2.5", "gpt-image", GPT_SIZES, FREE, MORE_QUALITIES, "medium", FORMATS_2X, markup=True
)
TWO_SIX = FamilyRules(
    "gpt-image-2.6", "gpt-image", GPT_SIZES, FREE, MORE_QUALITIES, "medium", FORMATS_2X, complexity=True,
    markup=True,
)  # fmt: skip
DALL_E_2 = FamilyRules(
    "dall-e-2", "dall-e-2", ("256x256", "512x512", "1024x1024"), None, ("standard", "auto"), "standard",
    prompt_limit=1000,
)  # fmt: skip
DALL_E_3 = FamilyRules(
    "dall-e-3", "dall-e-3", ("1024x1024", "1792x1024", "1024x1792"), None, ("standard", "hd", "auto"),
    "standard", prompt_limit=4000,
)  # fmt: skip

RETIRED_1X = "2026-12-01"
MODELS: dict[str, OpenAIModel] = {
    m.id: m
    for m in (
        OpenAIModel("gpt-image-2.6-sunburst", TWO_SIX, None, ()),
        OpenAIModel("gpt-image-2.6-flare", TWO_SIX, None, ()),
        OpenAIModel("gpt-image-2.5-sunburst", TWO_FIVE, None, ()),
        OpenAIModel("gpt-image-2.5-sunburst-2026-09-08", TWO_FIVE, None, ()),
        OpenAIModel("gpt-image-2.5-flare", TWO_FIVE, None, ()),
        OpenAIModel("gpt-image-2.5-flare-2026-09-08", TWO_FIVE, None, ()),
        OpenAIModel("gpt-image-2", TWO, None, ()),
        OpenAIModel("gpt-image-2-2026-04-21", TWO, None, ()),
        OpenAIModel("gpt-image-1.5", ONE, RETIRED_1X),
        OpenAIModel("gpt-image-1-mini", ONE, RETIRED_1X, ("low",)),
        OpenAIModel("chatgpt-image-latest", ONE, RETIRED_1X),
        OpenAIModel("gpt-image-1", ONE, "2026-10-23"),
        OpenAIModel("dall-e-3", DALL_E_3, "2026-05-12"),
        OpenAIModel("dall-e-2", DALL_E_2, "2026-05-12"),
    )
}
#: What an id OpenAI does not know mirrors: the newest live model.
NEWEST = "gpt-image-2.6-sunburst"
#: Today's `profile` setting, as the model each value names.
PROFILE_MIRRORS: dict[Profile, str] = {
    "gpt-image": "gpt-image-1",
    "dall-e-2": "dall-e-2",
    "dall-e-3": "dall-e-3",
}


def mirror_of(model_id: str, mirrors: str | None = None, profile: Profile | None = None) -> OpenAIModel:
    """The OpenAI model whose rules an id follows: the one named, else its profile's, else its own
    id's when OpenAI knows it, else the newest live model."""
    name = mirrors or (PROFILE_MIRRORS[profile] if profile else None) or model_id
    return MODELS.get(name) or MODELS[NEWEST]
