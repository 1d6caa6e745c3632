"""Today's fields on tiny diffusers models: refused by name, mapped to steps, markup edits, size rules."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from easel.app import create_app
from easel.backends import BackendConfigError
from easel.backends.diffusion.backend import DiffusersBackend
from easel.backends.diffusion.options import Steps
from easel.jobs import Render
from easel.settings import ModelSpec, Settings
from tests.conftest import sdk
from tests.helpers import Server, decode, items, markup_png, noisy_png, refusal

FAST = {"dtype": "float32", "steps": {"low": 2, "medium": 4, "high": 6}, "max_steps": 12}


@pytest.mark.parametrize(
    ("kwargs", "param", "fragment"),
    [
        ({"output_format": "gif"}, "output_format", "cannot make gif output"),
        ({"output_format": "svg"}, "output_format", "cannot make svg output"),
        ({"complexity": "high"}, "complexity", "no planning effort"),
    ],
)
def test_what_diffusers_cannot_honour_is_refused_by_name(
    diffusers_server: Server, kwargs: dict[str, Any], param: str, fragment: str
) -> None:
    client = sdk(diffusers_server)
    error = refusal(lambda: client.images.generate(model="sd", prompt="x", size="256x256", **kwargs))
    assert error["param"] == param
    assert fragment in error["message"]


def test_xhigh_and_max_map_to_steps() -> None:
    steps = Steps(low=2, medium=4, high=6)
    assert [steps.for_quality(q, 12) for q in ("low", "medium", "high", "xhigh", "max")] == [2, 4, 6, 9, 12]
    assert steps.for_quality("max", 8) == 8, "never past max_steps"
    assert Steps(high=6, xhigh=7, max=8).for_quality("xhigh", 12) == 7


def test_xhigh_renders_through_the_api(diffusers_server: Server) -> None:
    result = sdk(diffusers_server).images.generate(model="sd", prompt="x", size="256x256", quality="xhigh")
    assert result.quality == "xhigh"


def test_complexity_scales_steps_where_the_operator_maps_it(pipelines: dict[str, Path]) -> None:
    options = {"path": str(pipelines["sd"]), **FAST, "complexity": {"low": 0.5, "high": 2.0}}
    backend = DiffusersBackend(ModelSpec(id="m", backend="diffusers", sizes=["256x256"], options=options))
    assert backend.capabilities.complexity

    def steps(complexity: str | None) -> int:
        return backend._steps(Render("m", 1, 256, 256, "medium", "opaque", complexity=complexity))

    assert [steps("low"), steps(None), steps("high")] == [2, 4, 8], "medium quality is 4 steps"


@pytest.mark.parametrize("model", ["sd", "sd-inpaint", "flux"])
def test_markup_edits_keep_the_unmarked_pixels(diffusers_server: Server, model: str) -> None:
    source = noisy_png((256, 256), seed=11)
    markup = markup_png((256, 256), (96, 96, 128, 160), (250, 240, 20, 255))
    result = sdk(diffusers_server).images.edit(
        model=model,
        image=("i.png", source, "image/png"),
        prompt="a yellow boat",
        size="256x256",
        markup=("k.png", markup, "image/png"),
        extra_body={"seed": 2},
    )
    out = np.asarray(decode(base64.b64decode(items(result)[0].b64_json or "")).convert("RGB"), dtype=np.int16)
    original = np.asarray(decode(source).convert("RGB"), dtype=np.int16)
    far = np.ones((256, 256), dtype=bool)
    far[64:192, 64:160] = False  # the marks, grown for the repaint, and the seam
    assert np.array_equal(out[far], original[far]), "pixels away from the marks are kept exactly"
    assert np.abs(out[96:160, 96:128] - original[96:160, 96:128]).mean() > 5, (
        "the marked region was repainted"
    )


@pytest.fixture(scope="module")
def ruled(pipelines: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A tiny SD model that takes free sizes within an operator's rule instead of a list."""
    rule = {"multiple": 64, "min_pixels": 65_536, "max_pixels": 262_144, "max_aspect": 2.0}
    spec = ModelSpec(id="ruled", backend="diffusers", sizes=["256x256"], size_rule=rule,
                     options={"path": str(pipelines["sd"]), **FAST})  # fmt: skip
    settings = Settings(data_dir=tmp_path_factory.mktemp("ruled"), models=[spec])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ("256x384", None),
        ("448x320", None),
        ("300x300", "divisible by 64"),
        ("512x192", "between 1:2 and 2:1"),
        ("640x512", "between 65536 and 262144 pixels"),
    ],
)
def test_a_size_rule_accepts_and_refuses(ruled: TestClient, size: str, fragment: str | None) -> None:
    answer = ruled.post("/v1/images/generations", json={"model": "ruled", "prompt": "x", "size": size,
                                                        "steps": 1})  # fmt: skip
    if fragment is None:
        assert answer.status_code == 200, answer.text
        assert answer.json()["size"] == size
        return
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["type"]) == ("size", "image_generation_user_error")
    assert fragment in error["message"]


def test_a_size_rule_the_pipeline_cannot_follow_is_refused_at_start(pipelines: dict[str, Path]) -> None:
    spec = ModelSpec(id="f", backend="diffusers", sizes=["256x256"], size_rule={"multiple": 8},
                     options={"path": str(pipelines["flux"]), **FAST})  # fmt: skip
    with pytest.raises(BackendConfigError, match="multiples of 16"):
        DiffusersBackend(spec)
