"""The configuration examples in docs/diffusers.md are valid for the pipelines they name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from easel.backends.diffusion.backend import DiffusersBackend
from easel.settings import load_settings
from tests.helpers import ROOT

DOC = ROOT / "docs" / "diffusers.md"
#: The pipeline class and VAE depth of each repo the examples name, as their model_index.json says.
REPOS = {
    "stabilityai/sd-turbo": "StableDiffusionPipeline",
    "stabilityai/sdxl-turbo": "StableDiffusionXLPipeline",
    "black-forest-labs/FLUX.1-schnell": "FluxPipeline",
}


def examples() -> list[str]:
    """docs/diffusers.md's examples, and the README's diffusers one (its gateway example, which has a
    diffusers model too, is docs/gateway.md's to test: tests/backends/openai/test_docs.py)."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text() + (ROOT / "README.md").read_text(), re.S)
    return [b for b in blocks if 'backend = "diffusers"' in b and 'backend = "openai"' not in b]


def test_every_repo_in_the_docs_has_an_example() -> None:
    named = [re.search(r'path = "([^"]+)"', e).group(1) for e in examples()]  # type: ignore[union-attr]
    assert set(named) == set(REPOS)
    assert len(named) == 4, "three recipes and the README's example"


@pytest.mark.parametrize("example", examples())
def test_example_loads_and_its_sizes_suit_the_pipeline(example: str, tmp_path: Path) -> None:
    repo = re.search(r'path = "([^"]+)"', example).group(1)  # type: ignore[union-attr]
    folder = tmp_path / "pipeline"
    (folder / "vae").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": REPOS[repo]}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    config = tmp_path / "easel.toml"
    config.write_text(example.replace(f'path = "{repo}"', f'path = "{folder}"'))
    (spec,) = load_settings(config).models
    backend = DiffusersBackend(spec)  # options, folder, family and every size checked here
    assert backend.info.family.name == {"Flux": "flux", "StableDiffusionXL": "sdxl"}.get(
        REPOS[repo].removesuffix("Pipeline"), "sd"
    )
    assert "gpt-image-1" in spec.ids, "each example answers apps that ask for gpt-image-1"
