"""Pipeline families (SD, SDXL, SD3, Flux): read from a pipeline folder's config files, no weights loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Linear latent -> RGB projections, one row per latent channel (ComfyUI's published
# latent_rgb_factors); applied to the denoiser's latents they give a rough preview for free.
SD_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
SDXL_RGB = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SD3_RGB = (
    (-0.0922,-0.0175,0.0749), (0.0311,0.0633,0.0954), (0.1994,0.0927,0.0458), (0.0856,0.0339,0.0902),
    (0.0587,0.0272,-0.0496), (-0.0006,0.1104,0.0309), (0.0978,0.0306,0.0427), (-0.0042,0.1038,0.1358),
    (-0.0194,0.0020,0.0669), (-0.0488,0.0130,-0.0268), (0.0922,0.0988,0.0951), (-0.0278,0.0524,-0.0542),
    (0.0332,0.0456,0.0895), (-0.0069,-0.0030,-0.0810), (-0.0596,-0.0465,-0.0293), (-0.1448,-0.1463,-0.1189),
)  # fmt: skip
FLUX_RGB = (
    (-0.0346,0.0244,0.0681), (0.0034,0.0210,0.0687), (0.0275,-0.0668,-0.0433), (-0.0174,0.0160,0.0617),
    (0.0859,0.0721,0.0329), (0.0004,0.0383,0.0115), (0.0405,0.0861,0.0915), (-0.0236,-0.0185,-0.0259),
    (-0.0245,0.0250,0.1180), (0.1008,0.0755,-0.0421), (-0.0515,0.0201,0.0011), (0.0428,-0.0012,-0.0036),
    (0.0817,0.0765,0.0749), (-0.1264,-0.0522,-0.1103), (-0.0280,-0.0881,-0.0499), (-0.1262,-0.0982,-0.0778),
)  # fmt: skip

Matrix = tuple[tuple[float, float, float], ...]


class PipelineConfigError(ValueError):
    """The folder is not a diffusers pipeline easel knows how to serve."""


@dataclass(frozen=True)
class Family:
    """What easel needs to know about a pipeline family before loading any weights."""

    name: str
    #: Prefix of the pipeline class names (`model_index.json` `_class_name`) in this family.
    prefix: str
    negative_prompt: bool
    #: Latents are packed 2x2 into tokens (Flux): unpack before previewing.
    packed: bool
    #: Image sides must be a multiple of the VAE factor times this (2 for 2x2 patches).
    patch: int
    rgb: Matrix
    rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    default_guidance: float = 7.5


#: Most specific prefix first.
FAMILIES = (
    Family("sdxl", "StableDiffusionXL", True, False, 1, SDXL_RGB, (0.1084, -0.0175, -0.0011), 5.0),
    Family("sd3", "StableDiffusion3", True, False, 2, SD3_RGB, (0.2394, 0.2135, 0.1925), 7.0),
    Family("sd", "StableDiffusion", True, False, 1, SD_RGB, (0.0, 0.0, 0.0), 7.5),
    Family("flux", "Flux", False, True, 2, FLUX_RGB, (-0.0329, -0.0718, -0.0851), 3.5),
)


@dataclass(frozen=True)
class PipelineInfo:
    """A pipeline folder as read from its JSON configs."""

    family: Family
    class_name: str
    #: The checkpoint is an inpainting model (its denoiser takes image and mask channels).
    inpainting: bool
    vae_scale: int
    latent_channels: int
    #: guidance_scale changes the output (classifier-free or distilled guidance).
    guidance: bool

    @property
    def size_multiple(self) -> int:
        return self.vae_scale * self.family.patch

    def size_problem(self, width: int, height: int) -> str | None:
        """Why the pipeline cannot render this size, or None."""
        m = self.size_multiple
        if width % m or height % m:
            return f"{self.family.name} pipelines need sides that are multiples of {m}"
        return None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PipelineConfigError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def inspect(folder: Path) -> PipelineInfo:
    """Identify the family and size rules of the pipeline saved in `folder`."""
    index = _json(folder / "model_index.json")
    class_name = str(index.get("_class_name", ""))
    if not class_name:
        raise PipelineConfigError(f"{folder} has no model_index.json: not a diffusers pipeline folder")
    family = next((f for f in FAMILIES if class_name.startswith(f.prefix)), None)
    if family is None:
        known = ", ".join(f"{f.prefix}*" for f in FAMILIES)
        raise PipelineConfigError(f"{class_name} is not a pipeline family easel serves ({known})")
    vae = _json(folder / "vae" / "config.json")
    blocks = vae.get("block_out_channels") or [0, 0, 0, 0]
    denoiser = _json(folder / "unet" / "config.json") or _json(folder / "transformer" / "config.json")
    inpainting = "Inpaint" in class_name or denoiser.get("in_channels") == 9
    # Flux's guidance is distilled into the model (dev) or absent (schnell).
    guidance = bool(denoiser.get("guidance_embeds", False)) if family.name == "flux" else True
    return PipelineInfo(
        family=family,
        class_name=class_name,
        inpainting=inpainting,
        vae_scale=2 ** (len(blocks) - 1),
        latent_channels=int(vae.get("latent_channels", len(family.rgb))),
        guidance=guidance,
    )
