"""Tiny random diffusers pipelines (SD, SD-inpainting, SDXL, Flux) built in code: tests, benches, demos."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

TinyFamily = Literal["sd", "sd-inpaint", "sdxl", "flux"]
#: A tiny SD pipeline's safety checker: none, one that flags every image, or one that flags none.
Safety = Literal["none", "flags-all", "flags-none"]
FAMILIES: tuple[TinyFamily, ...] = ("sd", "sd-inpaint", "sdxl", "flux")
#: The text encoders' width; the denoisers' cross-attention matches it.
HIDDEN = 32


def build(family: TinyFamily, seed: int = 0, safety: Safety = "none") -> Any:
    """A random-weight pipeline of `family` with the real architecture shape, in well under a second.

    The VAE keeps the real downscale factor (8) so sizes follow the family's true rules; the
    tokenizers are character-level so nothing is downloaded. `safety` gives SD families
    Stable Diffusion's safety checker (tiny and random, with its thresholds set to decide).
    """
    import torch

    if safety != "none" and family not in ("sd", "sd-inpaint"):
        raise ValueError(f"only the SD families have a safety checker, not {family!r}")
    torch.manual_seed(seed)
    if family == "flux":
        return _flux()
    if family == "sdxl":
        return _sdxl()
    return _sd(inpaint=family == "sd-inpaint", safety=safety)


def save(family: TinyFamily, folder: Path, seed: int = 0, safety: Safety = "none") -> Path:
    """Build a tiny pipeline and `save_pretrained` it, so it loads through `from_pretrained`."""
    build(family, seed, safety).save_pretrained(str(folder))
    return folder


def _vae(latent_channels: int = 4, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=64,
        force_upcast=False,
        **extra,
    )


def _clip(projection: bool = False) -> tuple[Any, Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    chars = _byte_characters()
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=HIDDEN,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return model, tokenizer


def _byte_characters() -> list[str]:
    """The 256 characters byte-level BPE tokenizers (GPT-2, CLIP) map bytes to."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _euler() -> Any:
    """Stable Diffusion's own noise schedule, with the turbo models' trailing timesteps."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",
    )


def _sd(*, inpaint: bool, safety: Safety = "none") -> Any:
    from diffusers import (
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=9 if inpaint else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        norm_num_groups=32,
    )
    text_encoder, tokenizer = _clip()
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    return cls(
        vae=_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_euler(),
        safety_checker=None if safety == "none" else _safety_checker(safety == "flags-all"),
        feature_extractor=None if safety == "none" else _feature_extractor(),
        requires_safety_checker=safety != "none",
    )


def _safety_checker(flags_all: bool) -> Any:
    """Stable Diffusion's safety checker, tiny. An image is flagged when its embedding's cosine
    similarity to a concept exceeds that concept's threshold: below -1 every image is, above 1
    none is."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig

    vision = {"hidden_size": HIDDEN, "intermediate_size": 37, "num_hidden_layers": 1,
              "num_attention_heads": 4, "image_size": 32, "patch_size": 8}  # fmt: skip
    text = {"hidden_size": HIDDEN, "intermediate_size": 37, "num_hidden_layers": 1,
            "num_attention_heads": 4, "vocab_size": 99}  # fmt: skip
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=HIDDEN)
    )
    with torch.no_grad():
        threshold = -2.0 if flags_all else 2.0
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    return checker


def _feature_extractor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _sdxl() -> Any:
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    time_dim = 8
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        transformer_layers_per_block=(1, 2),
        # Six size/crop conditioning values, then the second encoder's pooled output.
        projection_class_embeddings_input_dim=6 * time_dim + HIDDEN,
        cross_attention_dim=2 * HIDDEN,
        norm_num_groups=32,
    )
    text_encoder, tokenizer = _clip()
    text_encoder_2, tokenizer_2 = _clip(projection=True)
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=_euler(),
    )


def _flux() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    latent = 16
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=latent * 4,  # 2x2 patches packed into channels
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=HIDDEN,
        pooled_projection_dim=HIDDEN,
        axes_dims_rope=(4, 4, 8),
    )
    pieces = ["<pad>", "</s>", "<unk>", "▁", *string.ascii_letters, *string.digits, *string.punctuation]
    t5_tokenizer = T5Tokenizer(
        vocab=[(p, -float(i)) for i, p in enumerate(pieces)], extra_ids=0, model_max_length=512
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(pieces),
            d_model=HIDDEN,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    text_encoder, tokenizer = _clip()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_vae(
            latent,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.1159,
            scaling_factor=0.3611,
        ),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
