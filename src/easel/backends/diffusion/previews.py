"""Partial images of a running pipeline: latents at evenly spaced steps, projected or decoded to RGB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from ...jobs import PreviewSink
from .families import PipelineInfo


def preview_steps(total: int, count: int) -> list[int]:
    """Up to `count` step indices spread evenly over `total` steps, never the last one (that is the image)."""
    picked = {round((j + 1) * total / (count + 1)) - 1 for j in range(count)}
    return sorted(s for s in picked if 0 <= s < total - 1)


class Previewer:
    """A `callback_on_step_end` that hands each image's partials to the sink as the steps run."""

    def __init__(
        self,
        info: PipelineInfo,
        mode: str,
        size: tuple[int, int],
        count: int,
        sink: PreviewSink,
        finish: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.info = info
        self.mode = mode if len(info.family.rgb) == info.latent_channels else "vae"
        self.size = size
        self.count = count
        self.sink = sink
        self.finish = finish
        self.steps: list[int] | None = None
        self.sent = 0

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.steps is None:
            self.steps = preview_steps(int(pipe.num_timesteps), self.count)
        if step in self.steps:
            for index, image in enumerate(self.render(pipe, kwargs["latents"])):
                self.sink(index, self.sent, self.finish(image) if self.finish else image)
            self.sent += 1
        return kwargs

    def render(self, pipe: Any, latents: Any) -> list[Image.Image]:
        """One RGB picture per image in the batch, at the requested size."""
        import torch

        with torch.no_grad():
            if self.info.family.packed:
                latents = pipe._unpack_latents(latents, self.size[1], self.size[0], pipe.vae_scale_factor)
            if self.mode == "vae":
                images: list[Image.Image] = _decode(pipe, latents)
            else:
                images = _project(self.info, latents)
        return [
            im if im.size == self.size else im.resize(self.size, Image.Resampling.BILINEAR) for im in images
        ]


def _project(info: PipelineInfo, latents: Any) -> list[Image.Image]:
    """The free preview: one small matrix product per latent pixel."""
    import torch

    x = latents.float()
    factors = torch.tensor(info.family.rgb, device=x.device)
    bias = torch.tensor(info.family.rgb_bias, device=x.device)[None, :, None, None]
    rgb = torch.einsum("bchw,cr->brhw", x, factors) + bias
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def _decode(pipe: Any, latents: Any) -> list[Image.Image]:
    """The faithful preview: what the VAE makes of the current latents."""
    vae = pipe.vae
    x = latents / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
    decoded = vae.decode(x.to(vae.dtype), return_dict=False)[0]
    images: list[Image.Image] = pipe.image_processor.postprocess(decoded, output_type="pil")
    return images
