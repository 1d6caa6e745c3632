"""Tiny random pipelines saved to disk once per session, and one `easel serve` that serves them all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from easel.backends.diffusion import tiny
from tests.helpers import Server, start_server

#: Model id -> (tiny family, extra TOML lines for its options).
SERVED = {
    # Like sd-turbo: guidance off, so negative prompts are refused.
    "sd": ("sd", "guidance_scale = 0.0"),
    "sd-inpaint": ("sd-inpaint", ""),
    "sdxl": ("sdxl", ""),
    "flux": ("flux", "max_sequence_length = 32"),
}
SIZES = '["256x256", "512x512", "256x384"]'


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> a saved tiny pipeline folder, loadable through `from_pretrained`."""
    root = tmp_path_factory.mktemp("pipelines")
    return {family: tiny.save(family, root / family) for family in tiny.FAMILIES}


def model_toml(model_id: str, folder: Path, extra: str = "", sizes: str = SIZES) -> str:
    return f"""
[[models]]
id = "{model_id}"
backend = "diffusers"
sizes = {sizes}
default_size = "256x256"

[models.options]
path = "{folder}"
dtype = "float32"
steps = {{ low = 2, medium = 4, high = 6 }}
max_steps = 12
{extra}
"""


@pytest.fixture(scope="session")
def diffusers_server(
    tmp_path_factory: pytest.TempPathFactory, pipelines: dict[str, Path]
) -> Iterator[Server]:
    config = "".join(model_toml(mid, pipelines[family], extra) for mid, (family, extra) in SERVED.items())
    config += '\n[[models]]\nid = "placeholder"\n'
    server = start_server(tmp_path_factory.mktemp("diffusers"), config)
    yield server
    server.stop()
