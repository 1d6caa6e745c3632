"""DiffusersOptions: a diffusers model's `[models.options]` table, validated when the server starts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..base import BackendOptions

#: easel quality names onto the step counts (dall-e's standard/hd included).
QUALITY_STEPS = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
    "standard": "medium",
    "hd": "high",
}


class Steps(BaseModel):
    """Denoising steps per `quality`."""

    model_config = ConfigDict(extra="forbid")

    low: int = Field(8, ge=1)
    medium: int = Field(20, ge=1)
    high: int = Field(40, ge=1)
    xhigh: int | None = Field(None, ge=1, description="Default: 1.5 times `high`, within `max_steps`.")
    max: int | None = Field(None, ge=1, description="Default: twice `high`, within `max_steps`.")

    def for_quality(self, quality: str, most: int) -> int:
        """The steps of a quality; xhigh and max, when not set, from `high` (never past `most`)."""
        name = QUALITY_STEPS.get(quality, "medium")
        if name == "xhigh":
            return self.xhigh or min(most, -(-self.high * 3 // 2))
        if name == "max":
            return self.max or min(most, self.high * 2)
        return int(getattr(self, name))


class Complexity(BaseModel):
    """Step-count factors per `complexity` (planning effort, apart from `quality`)."""

    model_config = ConfigDict(extra="forbid")

    low: float = Field(0.5, gt=0)
    medium: float = Field(1.0, gt=0)
    high: float = Field(1.5, gt=0)


class EditStrength(BaseModel):
    """Image-to-image strength for edits without an edit area, per `input_fidelity`."""

    model_config = ConfigDict(extra="forbid")

    low: float = Field(0.75, gt=0, le=1)
    high: float = Field(0.45, gt=0, le=1)


class DiffusersOptions(BackendOptions):
    """Options of `backend = "diffusers"`; unknown keys are configuration errors."""

    path: str = Field(description="A local pipeline folder, or a Hugging Face repo id.")
    allow_download: bool = Field(
        False, description="Download a repo id that is not in the local Hugging Face cache."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    variant: str | None = Field(None, description="Weight file variant, e.g. `fp16`.")
    device: str = Field("auto", description="`auto` (cuda, then mps, then cpu), or a torch device.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="`auto`: bf16 on GPUs and on CPUs with native bf16, fp16 on mps, else fp32."
    )
    steps: Steps = Field(default_factory=Steps, description="Steps for quality low/medium/high.")
    max_steps: int = Field(50, ge=1, description="Largest `steps` a request may ask for.")
    guidance_scale: float | None = Field(
        None, ge=0, description="Default guidance (none: the family's usual value)."
    )
    max_guidance_scale: float = Field(
        20.0, gt=0, description="Largest `guidance_scale` a request may ask for."
    )
    scheduler: str | None = Field(
        None, description="A diffusers scheduler class name, e.g. `EulerAncestralDiscreteScheduler`."
    )
    scheduler_options: dict[str, object] = Field(
        default_factory=dict, description="Overrides of the scheduler's config."
    )
    variation_strength: float = Field(
        0.6, gt=0, le=1, description="How far a variation moves from its input."
    )
    variation_prompt: str = Field("", description="Prompt used for variations.")
    edit_strength: EditStrength = Field(
        default_factory=EditStrength, description="Edits without a mask: strength per input_fidelity."
    )
    mask_blur: int = Field(4, ge=0, le=64, description="Seam softness (px) where an edit meets kept pixels.")
    preview: Literal["latent", "vae"] = Field(
        "latent", description="Partial images from a linear latent projection (free) or a VAE decode."
    )
    max_sequence_length: int | None = Field(
        None, ge=1, description="T5 prompt length for Flux and SD3 (pipeline default: 512)."
    )
    attention_slicing: bool = Field(False, description="Compute attention in slices (less memory).")
    vae_slicing: bool = Field(False, description="Decode a batch one image at a time.")
    vae_tiling: bool = Field(False, description="Decode large images in tiles.")
    cpu_offload: Literal["none", "model", "sequential"] = Field(
        "none", description="Keep weights in CPU memory and move them to the accelerator when used."
    )
    compile: bool = Field(
        False, description="torch.compile the denoiser; compiled at start-up with one warm-up image."
    )
    complexity: Complexity | None = Field(
        None,
        description="Honour `complexity` by scaling the step count per value (unset: `complexity` is "
        "refused with a 400, since a diffusion model has no separate planning stage).",
    )
    markup_strength: float = Field(
        0.8, gt=0, le=1, description="How far a markup edit repaints the sketch drawn over the image."
    )

    @model_validator(mode="after")
    def _steps_within_limit(self) -> DiffusersOptions:
        most = max(s for s in (self.steps.low, self.steps.medium, self.steps.high, self.steps.xhigh,
                              self.steps.max) if s is not None)  # fmt: skip
        if most > self.max_steps:
            raise ValueError(f"steps ({most}) exceed max_steps ({self.max_steps})")
        return self
