"""The placeholder's procedural painter: prompt words become a palette and shapes, step by step."""

from __future__ import annotations

import colorsys
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

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


def _gradient(scene: Scene) -> np.ndarray:
    """A diagonal multi-stop gradient at full size, built as a strided view of one ramp."""
    brief, stops, slope = scene.brief, scene.stops, scene.slope
    w, h = brief.width, brief.height
    length = w + slope * h
    xs = np.linspace(0.0, 1.0, len(stops))
    t = np.linspace(0.0, 1.0, length)
    channels = 4 if brief.transparent else 3
    ramp = np.zeros((length, channels), dtype=np.uint8)
    for c in range(3):
        ramp[:, c] = np.interp(t, xs, [s[c] for s in stops]).astype(np.uint8)
    if scene.flipped:
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


@dataclass(frozen=True)
class Stroke:
    """One prompt word's shape: a darker halo, the body, and (but for rings) a highlight."""

    kind: str
    cx: float
    cy: float
    r: float
    colour: RGB

    def layers(self) -> list[tuple[float, float, float, RGB]]:
        """(cx, cy, r, colour) of each fill, bottom to top: a soft look from three cheap fills."""
        out = [(self.cx, self.cy, self.r * 1.12, _mix(self.colour, (0, 0, 0), 0.35))]
        out.append((self.cx, self.cy, self.r, self.colour))
        if self.kind != "ring":
            r = self.r
            out.append(
                (self.cx - r * 0.2, self.cy - r * 0.2, r * 0.45, _mix(self.colour, (255, 255, 255), 0.3))
            )
        return out


@dataclass(frozen=True)
class Scene:
    """A planned picture: the background and every stroke, before a pixel is drawn."""

    brief: Brief
    stops: tuple[RGB, ...]
    slope: int
    flipped: bool
    strokes: tuple[Stroke, ...]


def plan(brief: Brief) -> Scene:
    """Every choice of the picture, drawn from the seed in a fixed order."""
    rng = random.Random(brief.seed)
    colours = palette(brief, rng)
    slope = rng.choice((0, 1, 2))
    flipped = rng.random() < 0.5
    banned = set(words_of(brief.negative_prompt))
    words = [w for w in words_of(brief.prompt) if w not in banned] or ["easel"]
    short = min(brief.width, brief.height)
    strokes = []
    for step in range(brief.strokes):
        word = words[step % len(words)]
        kind = SHAPES[_stable_hash(word) % len(SHAPES)]
        colour = COLOURS.get(word) or SCENES.get(word) or colours[(step + 3) % len(colours)]
        r = short * rng.uniform(0.05, 0.2)
        cx, cy = rng.uniform(0, brief.width), rng.uniform(0, brief.height * 0.85)
        strokes.append(Stroke(kind, cx, cy, r, _saturate(colour, brief.saturation)))
    return Scene(brief, tuple(colours[:3]), slope, flipped, tuple(strokes))


def paint(brief: Brief, on_stage: Stage | None = None, stages: int = 0) -> Image.Image:
    """Paint one image; call `on_stage` with a copy of the canvas at `stages` evenly spaced steps.

    The steps are real: the background, then one prompt word's shape per step, then the
    caption. A stage shows the canvas as it stood after that step.
    """
    return raster(plan(brief), on_stage, stages)


def raster(scene: Scene, on_stage: Stage | None = None, stages: int = 0) -> Image.Image:
    """The scene's pixels, stroke by stroke (see `paint`)."""
    brief = scene.brief
    canvas = Image.fromarray(_gradient(scene))
    draw = ImageDraw.Draw(canvas)
    total = len(scene.strokes) + 1
    marks = {round(j * total / (stages + 1)) for j in range(1, stages + 1)} if stages else set()
    for step, stroke in enumerate(scene.strokes):
        for cx, cy, r, colour in stroke.layers():
            _shape(draw, stroke.kind, cx, cy, r, colour)
        if on_stage is not None and step + 1 in marks:
            on_stage(canvas.copy())
    if brief.caption:
        _caption(canvas, brief)
    return canvas


def frames(scene: Scene, count: int) -> list[Image.Image]:
    """An animation of the painting: `count` frames, each a later stage, the last the finished picture."""
    stages: list[Image.Image] = []
    final = raster(scene, stages.append, count - 1)
    return [*stages, final]


def vector(scene: Scene) -> str:
    """The same scene as an SVG document: the gradient, every stroke's fills, and the caption."""
    brief = scene.brief
    w, h = brief.width, brief.height
    length = w + scene.slope * h
    k = (length - 1) / (1 + scene.slope**2)  # the gradient runs along (1, slope), as the raster's
    stops = scene.stops[::-1] if scene.flipped else scene.stops
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<defs><linearGradient id="bg" gradientUnits="userSpaceOnUse" x1="0" y1="0" x2="{k:.2f}" '
        f'y2="{k * scene.slope:.2f}">',
        *(f'<stop offset="{i / (len(stops) - 1):g}" stop-color="{_hex(c)}"/>' for i, c in enumerate(stops)),
        "</linearGradient></defs>",
    ]
    if not brief.transparent:
        parts.append(f'<rect width="{w}" height="{h}" fill="url(#bg)"/>')
    for stroke in scene.strokes:
        parts += [_svg_shape(stroke.kind, cx, cy, r, c) for cx, cy, r, c in stroke.layers()]
    if brief.caption:
        size = max(10, h // 36)
        x, y = size, h - size * 2 + size  # the raster's text box top, as an SVG baseline
        text = escape(_caption_text(brief))
        parts += [_svg_text(x + 1, y + 1, size, "#000", text), _svg_text(x, y, size, "#fff", text)]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _svg_text(x: int, y: int, size: int, fill: str, text: str) -> str:
    return f'<text x="{x}" y="{y}" font-size="{size}" font-family="sans-serif" fill="{fill}">{text}</text>'


def _svg_shape(kind: str, cx: float, cy: float, r: float, fill: RGB) -> str:
    colour = _hex(fill)
    if kind == "disc":
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{colour}"/>'
    if kind == "square":
        return (
            f'<rect x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" '
            f'rx="{r * 0.25:.1f}" fill="{colour}"/>'
        )
    if kind == "ring":
        width = max(2, int(r * 0.28))  # Pillow draws the outline inside the circle's box
        return (
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r - width / 2:.1f}" fill="none" stroke="{colour}" '
            f'stroke-width="{width}"/>'
        )
    if kind == "triangle":
        points = [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)]
    else:
        points = [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    return f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="{colour}"/>'


def _hex(c: RGB) -> str:
    return f"#{c[0]:02x}{c[1]:02x}{c[2]:02x}"


def _caption_text(brief: Brief) -> str:
    return brief.prompt if len(brief.prompt) <= 80 else brief.prompt[:77] + "..."


def _caption(canvas: Image.Image, brief: Brief) -> None:
    """The prompt along the bottom edge, with a one-pixel shadow, rasterised once."""
    size = max(10, brief.height // 36)
    text = _caption_text(brief)
    font = _font(size)
    _, _, right, bottom = font.getbbox(text)
    if right <= 0 or bottom <= 0:
        return
    glyphs = Image.new("L", (int(right), int(bottom)))
    ImageDraw.Draw(glyphs).text((0, 0), text, font=font, fill=255)
    x, y = size, brief.height - size * 2
    canvas.paste((0, 0, 0, 255), (x + 1, y + 1), glyphs)
    canvas.paste((255, 255, 255, 255), (x, y), glyphs)
