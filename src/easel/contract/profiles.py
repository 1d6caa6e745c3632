"""What one served id shows of OpenAI's API: its mirror's rules, strict or as the lenient superset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalogue import (
    FORMATS_2X,
    MODELS,
    MORE_QUALITIES,
    FamilyRules,
    OpenAIModel,
    Profile,
    SizeRule,
    mirror_of,
    parse_size,
)

if TYPE_CHECKING:
    from ..settings import ModelSpec

__all__ = ["Profile", "Surface", "parse_size"]

#: What a lenient GPT model accepts besides its mirror's fixed sizes, unless the operator lists its own.
LENIENT_EXTRA_SIZES = ("256x256", "512x512")


@dataclass(frozen=True)
class Surface:
    """The rules one id follows: the OpenAI model it mirrors and, when lenient, easel's superset.

    Lenient GPT models accept every field of the newest GPT family (complexity, markup, GIF and
    SVG output, xhigh and max, input_fidelity), whatever model they mirror; sizes and defaults
    stay their mirror's (or the operator's). Strict models accept exactly what OpenAI documents.
    """

    id: str
    mirror: OpenAIModel
    strict: bool
    #: The fixed sizes it accepts, in the order messages list them.
    sizes: tuple[str, ...]
    #: Free sizes within a rule, besides the fixed ones (None: only those).
    size_rule: SizeRule | None
    #: What `size=auto` resolves to (for generations).
    default_size: str
    #: What `quality=auto` resolves to.
    default_quality: str
    qualities: tuple[str, ...]
    formats: tuple[str, ...]
    complexity: bool
    markup: bool
    #: The `input_fidelity` values accepted; () when the parameter must be omitted.
    input_fidelity: tuple[str, ...]

    @property
    def profile(self) -> Profile:
        return self.mirror.profile

    @property
    def gpt(self) -> bool:
        return self.profile == "gpt-image"

    @property
    def prompt_limit(self) -> int:
        return self.mirror.rules.prompt_limit

    def allows(self, size: str) -> bool:
        """Whether a concrete size is accepted (by the list, or within the rule)."""
        if size in self.sizes:
            return True
        return self.size_rule is not None and self.size_rule.problem(size) is None

    @classmethod
    def of(cls, spec: ModelSpec, model_id: str | None = None) -> Surface:
        """The surface of `model_id` (the spec's own id or one of its aliases); ValueError when
        its configured defaults are not allowed."""
        name = model_id or spec.id
        # The spec's `mirrors` and `profile` name what its own id follows; an alias follows the
        # OpenAI model it names (or, if OpenAI knows no such id, what the spec's own id follows).
        own = name == spec.id or name not in MODELS
        mirror = mirror_of(spec.id, spec.mirrors, spec.profile) if own else MODELS[name]
        rules = mirror.rules
        lenient_gpt = not spec.strict and rules.profile == "gpt-image"
        sizes, size_rule = _sizes(spec, rules, lenient_gpt)
        surface = cls(
            id=name,
            mirror=mirror,
            strict=spec.strict,
            sizes=sizes,
            size_rule=size_rule,
            default_size=spec.default_size or ("1024x1024" if "1024x1024" in sizes else sizes[0]),
            default_quality=spec.default_quality or rules.default_quality,
            qualities=MORE_QUALITIES if lenient_gpt else rules.qualities,
            formats=FORMATS_2X if lenient_gpt else rules.formats,
            complexity=lenient_gpt or rules.complexity,
            markup=lenient_gpt or rules.markup,
            input_fidelity=("high", "low") if lenient_gpt else mirror.input_fidelity,
        )
        if spec.default_size and not surface.allows(spec.default_size):
            raise ValueError(
                f"model {name!r}: default_size {spec.default_size!r} is not one of {list(sizes)}"
                + (" and breaks the size rule" if size_rule else "")
            )
        return surface


def _sizes(spec: ModelSpec, rules: FamilyRules, lenient_gpt: bool) -> tuple[tuple[str, ...], SizeRule | None]:
    if spec.strict:
        return rules.sizes, rules.size_rule
    if spec.sizes:  # the operator's own list, and a rule only if the operator gives one
        return tuple(spec.sizes), spec.size_rule.rule() if spec.size_rule else None
    extra = LENIENT_EXTRA_SIZES if lenient_gpt else ()
    rule = spec.size_rule.rule() if spec.size_rule else rules.size_rule
    return (*extra, *rules.sizes), rule
