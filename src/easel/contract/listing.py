"""The /v1/models entry of one served id: OpenAI's keys (`shutdown_date` too), then easel's."""

from __future__ import annotations

from .responses import ModelEntry
from .rules import ModelRules


def model_entry(rules: ModelRules, served_by: str, created: int) -> ModelEntry:
    """What a client learns of an id: whose rules it follows, what answers it, what it can do."""
    spec, surface, caps = rules.spec, rules.surface, rules.caps
    retired = surface.mirror.shutdown_date if surface.mirror.id == rules.id else None
    return {
        "id": rules.id,
        "object": "model",
        "created": created,
        "owned_by": spec.owned_by,
        "shutdown_date": spec.shutdown_date or retired,
        "mirrors": surface.mirror.id,
        "family": surface.mirror.family,
        "served_by": served_by,
        "profile": surface.profile,
        "strict": surface.strict,
        "backend": spec.backend,
        "sizes": list(surface.sizes),
        "size_rule": surface.size_rule.describe() if surface.size_rule else None,
        "default_size": surface.default_size,
        "default_quality": surface.default_quality,
        "qualities": [q for q in surface.qualities if q != "auto"],
        "output_formats": [f for f in surface.formats if f in caps.output_formats] if surface.gpt else [],
        "complexity": surface.complexity and caps.complexity,
        "markup": surface.markup and caps.markup,
        "operations": [op for op in sorted(caps.operations) if rules.serves(op)],
        "transparent_background": caps.transparent_background,
        "extensions": sorted(caps.extensions),
        "max_steps": caps.max_steps,
        "guidance_range": list(caps.guidance_range),
        "max_input_images": caps.max_input_images,
        "partial_images": caps.previews and surface.gpt,  # `stream` is a GPT image field
    }
