"""The `usage` estimate in OpenAI's token units, so clients that read it keep working.

Method (documented in the README):
- output tokens: OpenAI's published table for gpt-image-1 by quality at 1024x1024, 1024x1536
  and 1536x1024; any other size scales the square figure by its pixel count. OpenAI publishes
  no figures for the 2.x models: they get the same table, `xhigh` 1.5 times `high` and `max`
  twice `high`, and a GIF costs its frame count times one still.
- text tokens: about one token per 4 characters of prompt, at least one per word (the
  usual rule of thumb for English BPE vocabularies; easel ships no tokenizer).
- image tokens (edit inputs): the vision rule: scale into 2048x2048, shortest side to
  512 (input_fidelity=low) or 1024 (high), then 85 + 170 per 512-pixel tile.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .responses import SvgUsage, Usage

OUTPUT_TOKENS: dict[str, dict[str, int]] = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
OUTPUT_TOKENS["xhigh"] = {size: tokens * 3 // 2 for size, tokens in OUTPUT_TOKENS["high"].items()}
#: Reasoning tokens the SVG estimate gives each author effort (none given: `medium`).
EFFORT_TOKENS = {
    "none": 0,
    "minimal": 64,
    "low": 256,
    "medium": 1024,
    "high": 4096,
    "xhigh": 8192,
    "max": 16384,
}
OUTPUT_TOKENS["max"] = {size: tokens * 2 for size, tokens in OUTPUT_TOKENS["high"].items()}
_WORDS = re.compile(r"\S+")


def output_tokens(quality: str, width: int, height: int) -> int:
    table = OUTPUT_TOKENS.get(quality, OUTPUT_TOKENS["medium"])
    exact = table.get(f"{width}x{height}")
    if exact is not None:
        return exact
    return max(1, round(table["1024x1024"] * width * height / (1024 * 1024)))


def text_tokens(prompt: str | None) -> int:
    if not prompt:
        return 0
    return max(len(_WORDS.findall(prompt)), math.ceil(len(prompt) / 4))


def image_tokens(width: int, height: int, fidelity: str = "low") -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    short = 1024 if fidelity == "high" else 512
    scale = short / min(w, h)
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


def usage(
    prompt: str | None,
    input_images: Sequence[tuple[int, int]],
    fidelity: str,
    quality: str,
    width: int,
    height: int,
    n: int,
    *,
    frames: int = 1,
) -> Usage:
    """The `usage` object for `n` images (each of `frames` frames) of one request."""
    text = text_tokens(prompt)
    images = sum(image_tokens(w, h, fidelity) for w, h in input_images)
    out = output_tokens(quality, width, height) * n * frames
    return {
        "input_tokens": text + images,
        "output_tokens": out,
        "total_tokens": text + images + out,
        "input_tokens_details": {"text_tokens": text, "image_tokens": images},
    }


def svg_usage(prompt: str | None, document: str, author: str, effort: str | None) -> SvgUsage:
    """`svg_usage`: the prompt in, the document out at ~4 characters a token, and reasoning by effort."""
    text = text_tokens(prompt)
    out = max(1, math.ceil(len(document) / 4))
    reasoning = EFFORT_TOKENS[effort or "medium"]
    return {
        "input_tokens": text,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
        "total_tokens": text + out + reasoning,
        "model": author,
    }
