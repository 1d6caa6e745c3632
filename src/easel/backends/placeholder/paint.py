"""The placeholder's procedural painter: prompt words become a palette and shapes, step by step."""

from __future__ import annotations

import colorsys
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
#: Receives a copy of the canvas at a stage of the painting.
Stage = Callable[[Image.Image], None]

#: Colour words a prompt may use; they set the palette in the order they appear.
COLOURS: dict[str, RGB] = {
    "red": (214, 48, 49),
    "crimson": (180, 20, 50),
    "orange": (240, 130, 40),
    "yellow": (250, 215, 60),
    "gold": (225, 175, 45),
    "golden": (225, 175, 45),
    "green": (60, 170, 80),
    "lime": (160, 220, 60),
    "teal": (30, 150, 150),
    "cyan": (60, 210, 230),
    "blue": (45, 95, 210),
    "navy": (25, 40, 110),
    "purple": (130, 60, 180),
    "violet": (150, 90, 220),
    "magenta": (210, 50, 170),
    "pink": (245, 140, 180),
    "brown": (130, 85, 50),
    "black": (20, 20, 24),
    "white": (245, 245, 240),
    "gray": (128, 128, 132),
    "grey": (128, 128, 132),
    "silver": (190, 195, 200),
    "beige": (225, 210, 175),
}
#: Scene words that bring their own colours.
SCENES: dict[str, RGB] = {
    "sky": (120, 180, 240),
    "sea": (30, 90, 160),
    "ocean": (20, 80, 150),
    "water": (40, 120, 190),
    "sun": (255, 200, 60),
    "sunset": (245, 110, 60),
    "moon": (225, 225, 210),
    "night": (15, 20, 50),
    "forest": (30, 95, 45),
    "grass": (80, 160, 60),
    "tree": (50, 120, 50),
    "fire": (235, 80, 20),
    "snow": (235, 240, 250),
    "sand": (220, 195, 140),
    "desert": (210, 170, 110),
    "otter": (120, 80, 50),
    "cat": (200, 140, 80),
    "dog": (170, 120, 70),
}
SHAPES = ("disc", "square", "triangle", "ring", "diamond")
_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str | None) -> list[str]:
    return _WORD.findall((text or "").lower())


def derive_seed(*parts: object) -> int:
    """A stable 32-bit seed from anything printable (the placeholder's default seed)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big")


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _hue(h: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, saturation, value)
    return (int(r * 255), int(g * 255), int(b * 255))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        int(a[0] + (b[0] - a[0]) * t),
        int(a[1] + (b[1] - a[1]) * t),
        int(a[2] + (b[2] - a[2]) * t),
    )


def _saturate(c: RGB, amount: float) -> RGB:
    grey = (c[0] * 299 + c[1] * 587 + c[2] * 114) // 1000
    return _mix((grey, grey, grey), c, amount)


@dataclass(frozen=True)
class Brief:
    """Everything the painter needs for one image."""

    prompt: str
    width: int
    height: int
    seed: int
    strokes: int
    transparent: bool
    negative_prompt: str | None = None
    #: 1.0 is neutral; lower is more muted (dall-e-3 `natural`, low guidance).
    saturation: float = 1.0
    caption: bool = True


def palette(brief: Brief, rng: random.Random) -> list[RGB]:
    """Colours named in the prompt first, then hues derived from the prompt's words."""
    banned = set(words_of(brief.negative_prompt))
    words = [w for w in words_of(brief.prompt) if w not in banned]
    named = [COLOURS.get(w) or SCENES.get(w) for w in words]
    colours = [c for c in named if c is not None]
    base = (_stable_hash(brief.prompt) % 360) / 360
    while len(colours) < 5:
        colours.append(_hue(base + rng.uniform(-0.18, 0.18) + 0.3 * len(colours), 0.65, 0.9))
    return [_saturate(c, brief.saturation) for c in colours]


def _gradient(brief: Brief, stops: list[RGB], rng: random.Random) -> np.ndarray:
    """A diagonal multi-stop gradient at full size, built as a strided view of one ramp."""
    w, h = brief.width, brief.height
    slope = rng.choice((0, 1, 2))
    length = w + slope * h
    xs = np.linspace(0.0, 1.0, len(stops))
    t = np.linspace(0.0, 1.0, length)
    channels = 4 if brief.transparent else 3
    ramp = np.zeros((length, channels), dtype=np.uint8)
    for c in range(3):
        ramp[:, c] = np.interp(t, xs, [s[c] for s in stops]).astype(np.uint8)
    if rng.random() < 0.5:
        ramp = np.ascontiguousarray(ramp[::-1])
    # pixel (y, x) = ramp[x + slope*y]: each row is a contiguous slice, so the copy is cheap.
    step = ramp.strides[0]
    view = as_strided(ramp, shape=(h, w, channels), strides=(slope * step, step, 1))
    return np.ascontiguousarray(view)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill: RGB) -> None:
    colour = (*fill, 255)
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "disc":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rounded_rectangle(box, radius=r * 0.25, fill=colour)
    elif kind == "triangle":
        draw.polygon(
            [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)], fill=colour
        )
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r * 0.28)))
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)


def paint(brief: Brief, on_stage: Stage | None = None, stages: int = 0) -> Image.Image:
    """Paint one image; call `on_stage` with a copy of the canvas at `stages` evenly spaced steps.

    The steps are real: the background, then one prompt word's shape per step, then the
    caption. A stage shows the canvas as it stood after that step.
    """
    rng = random.Random(brief.seed)
    colours = palette(brief, rng)
    canvas = Image.fromarray(_gradient(brief, colours[:3], rng))
    draw = ImageDraw.Draw(canvas)
    banned = set(words_of(brief.negative_prompt))
    words = [w for w in words_of(brief.prompt) if w not in banned] or ["easel"]
    total = brief.strokes + 1
    marks = {round(j * total / (stages + 1)) for j in range(1, stages + 1)} if stages else set()
    short = min(brief.width, brief.height)
    for step in range(brief.strokes):
        word = words[step % len(words)]
        kind = SHAPES[_stable_hash(word) % len(SHAPES)]
        colour = COLOURS.get(word) or SCENES.get(word) or colours[(step + 3) % len(colours)]
        colour = _saturate(colour, brief.saturation)
        r = short * rng.uniform(0.05, 0.2)
        cx, cy = rng.uniform(0, brief.width), rng.uniform(0, brief.height * 0.85)
        # A darker halo, the body, and a highlight: a soft look from three cheap fills.
        _shape(draw, kind, cx, cy, r * 1.12, _mix(colour, (0, 0, 0), 0.35))
        _shape(draw, kind, cx, cy, r, colour)
        if kind != "ring":
            _shape(draw, kind, cx - r * 0.2, cy - r * 0.2, r * 0.45, _mix(colour, (255, 255, 255), 0.3))
        if on_stage is not None and step + 1 in marks:
            on_stage(canvas.copy())
    if brief.caption:
        _caption(canvas, brief)
    return canvas


def _caption(canvas: Image.Image, brief: Brief) -> None:
    """The prompt along the bottom edge, with a one-pixel shadow, rasterised once."""
    size = max(10, brief.height // 36)
    text = brief.prompt if len(brief.prompt) <= 80 else brief.prompt[:77] + "..."
    font = _font(size)
    _, _, right, bottom = font.getbbox(text)
    if right <= 0 or bottom <= 0:
        return
    glyphs = Image.new("L", (int(right), int(bottom)))
    ImageDraw.Draw(glyphs).text((0, 0), text, font=font, fill=255)
    x, y = size, brief.height - size * 2
    canvas.paste((0, 0, 0, 255), (x + 1, y + 1), glyphs)
    canvas.paste((255, 255, 255, 255), (x, y), glyphs)
