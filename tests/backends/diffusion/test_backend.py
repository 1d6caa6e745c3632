"""The diffusers backend in process: options, loading, previews, failures and recovery."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from easel.app import create_app
from easel.backends import BackendConfigError
from easel.backends.diffusion import tiny
from easel.backends.diffusion.backend import DiffusersBackend
from easel.backends.diffusion.families import PipelineConfigError, inspect
from easel.backends.diffusion.loading import pick_dtype
from easel.backends.diffusion.previews import preview_steps
from easel.jobs import GenerateJob, Render, VariationJob
from easel.settings import ModelSpec, Settings
from tests.helpers import decode, model_toml, noisy_png, start_server

FAST = {"dtype": "float32", "steps": {"low": 2, "medium": 4, "high": 6}}


def backend(folder: Path, **options: Any) -> DiffusersBackend:
    spec = ModelSpec(
        id="m", backend="diffusers", sizes=["256x256"], options={"path": str(folder), **FAST, **options}
    )
    b = DiffusersBackend(spec)
    b.start()
    return b


def generate(
    b: DiffusersBackend, n: int = 1, seed: int = 7, previews: int = 0, sink: Any = None
) -> list[Image.Image]:
    render = Render("m", n, 256, 256, "medium", "opaque", seed=seed, previews=previews)
    return [r.image for r in b.run(GenerateJob(render=render, prompt="a boat"), sink)]


def diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


# -- previews ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "steps"),
    [(4, 3, [0, 1, 2]), (4, 2, [0, 2]), (10, 3, [1, 4, 7]), (2, 3, [0]), (1, 3, []), (8, 0, [])],
)
def test_previews_are_evenly_spaced_and_never_the_last_step(total: int, count: int, steps: list[int]) -> None:
    assert preview_steps(total, count) == steps


def test_vae_previews_show_the_image_forming(pipelines: dict[str, Path]) -> None:
    b = backend(pipelines["sdxl"], preview="vae")
    seen: list[tuple[int, int, Image.Image]] = []
    final = generate(b, n=2, previews=2, sink=lambda i, j, im: seen.append((i, j, im)))
    assert [(i, j) for i, j, _ in seen] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert all(im.size == (256, 256) for *_, im in seen)
    first, second = seen[0][2], seen[2][2]
    assert diff(first, second) > 0.1
    assert diff(second, final[0]) > 0.1


# -- options ----------------------------------------------------------------------------------


def test_scheduler_and_memory_options_load_and_render(pipelines: dict[str, Path]) -> None:
    plain = generate(backend(pipelines["sd"]))[0]
    b = backend(
        pipelines["sd"],
        scheduler="EulerAncestralDiscreteScheduler",
        attention_slicing=True,
        vae_slicing=True,
        vae_tiling=True,
    )
    assert type(b.loaded.text2image.scheduler).__name__ == "EulerAncestralDiscreteScheduler"  # type: ignore[union-attr]
    swapped = generate(b)[0]
    assert swapped.size == (256, 256)
    assert diff(plain, swapped) > 0.5, "the scheduler changed the result"


def test_compile_pays_the_compilation_at_start_up(pipelines: dict[str, Path]) -> None:
    compiled = backend(pipelines["sd"], compile=True)
    unet = compiled.loaded.text2image.unet  # type: ignore[union-attr]
    assert type(unet).__name__ == "OptimizedModule"
    plain = generate(backend(pipelines["sd"]))[0]
    assert diff(generate(compiled)[0], plain) < 0.05, "compiled and eager agree but for rounding"


def test_variation_strength_sets_how_far_variations_move(pipelines: dict[str, Path]) -> None:
    source = decode(noisy_png((256, 256), seed=2)).convert("RGB")
    render = Render("m", 1, 256, 256, "medium", "opaque", seed=1)

    def distance(strength: float) -> float:
        b = backend(pipelines["sd"], variation_strength=strength)
        return diff(next(b.run(VariationJob(render=render, image=source))).image, source)

    assert distance(0.3) < distance(0.9)


def test_dtype_auto_takes_bf16_where_the_cpu_has_it() -> None:
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert pick_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert pick_dtype("float16", "cpu") == torch.float16


# -- configuration errors, before anything binds ----------------------------------------------


@pytest.mark.parametrize(
    ("options", "sizes", "fragment"),
    [
        ({"steps": {"low": 2, "medium": 4, "high": 60}}, None, "exceed max_steps"),
        ({"colour": "blue"}, None, "colour"),
        ({}, ["264x264"], "multiples of 16"),
        ({"scheduler": "NotAScheduler"}, None, "not a diffusers scheduler"),
        ({"cpu_offload": "model", "device": "cpu"}, None, "accelerator"),
    ],
)
def test_bad_configuration_is_refused_clearly(
    pipelines: dict[str, Path], options: dict[str, Any], sizes: list[str] | None, fragment: str
) -> None:
    spec = ModelSpec(
        id="m", backend="diffusers", sizes=sizes, options={"path": str(pipelines["flux"]), **options}
    )
    with pytest.raises(BackendConfigError, match=fragment):
        DiffusersBackend(spec).start()


def test_serve_reports_a_bad_pipeline_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="not a diffusers pipeline folder"):
        start_server(tmp_path, model_toml("m", tmp_path / "empty"))


def test_unknown_pipeline_families_are_named(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(PipelineConfigError, match="KandinskyPipeline"):
        inspect(tmp_path)


def test_repo_ids_come_from_the_local_cache_only(tmp_path: Path, pipelines: dict[str, Path]) -> None:
    """A hub id resolves offline from the Hugging Face cache, and is refused when not there."""
    snapshot = tmp_path / "hub" / "models--tiny--sd" / "snapshots" / ("0" * 40)
    shutil.copytree(pipelines["sd"], snapshot)
    (tmp_path / "hub" / "models--tiny--sd" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--sd" / "refs" / "main").write_text("0" * 40)
    script = (
        "from easel.backends.diffusion.loading import resolve_folder\n"
        "from easel.backends.diffusion.options import DiffusersOptions\n"
        "import sys\n"
        "try:\n"
        "    print(resolve_folder(DiffusersOptions(path=sys.argv[1])))\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"}

    def resolve(repo: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", script, repo], env=env, capture_output=True, text=True, timeout=60
        )
        return run.stdout.strip()

    assert resolve("tiny/sd") == str(snapshot)
    assert resolve("tiny/absent").startswith("refused:")
    assert "hf download tiny/absent" in resolve("tiny/absent")


# -- failures -----------------------------------------------------------------------------------


@pytest.fixture
def sd_app(tmp_path: Path, pipelines: dict[str, Path]) -> Iterator[TestClient]:
    spec = ModelSpec(
        id="m", backend="diffusers", sizes=["256x256"], options={"path": str(pipelines["sd"]), **FAST}
    )
    settings = Settings(data_dir=tmp_path / "data", models=[spec])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _run_out_of_memory_once(client: TestClient) -> None:
    unet = client.app.state.services.service.models["m"].backend.loaded.text2image.unet  # type: ignore[attr-defined]

    def fail(*args: Any, **kwargs: Any) -> Any:
        del unet.forward  # the next call works again
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    unet.forward = fail


def test_out_of_memory_is_reported_and_the_backend_recovers(sd_app: TestClient) -> None:
    _run_out_of_memory_once(sd_app)
    failed = sd_app.post("/v1/images/generations", json={"prompt": "big", "n": 3})
    assert failed.status_code == 500
    error = failed.json()["error"]
    assert error["type"] == "image_generation_server_error"
    assert error["code"] == "image_generation_failed"
    assert "ran out of memory" in error["message"]
    assert "3 image(s) at 256x256" in error["message"]
    after = sd_app.post("/v1/images/generations", json={"prompt": "small"})
    assert after.status_code == 200
    assert decode(base64.b64decode(after.json()["data"][0]["b64_json"])).size == (256, 256)


def test_out_of_memory_in_a_stream_is_an_error_event(sd_app: TestClient) -> None:
    _run_out_of_memory_once(sd_app)
    response = sd_app.post(
        "/v1/images/generations", json={"prompt": "big", "stream": True, "partial_images": 1}
    )
    assert response.status_code == 200
    assert "event: error" in response.text
    assert "ran out of memory" in response.text
    assert sd_app.post("/v1/images/generations", json={"prompt": "again"}).status_code == 200


def test_a_crashing_pipeline_is_a_500_for_that_request_only(sd_app: TestClient) -> None:
    unet = sd_app.app.state.services.service.models["m"].backend.loaded.text2image.unet  # type: ignore[attr-defined]

    def crash(*args: Any, **kwargs: Any) -> Any:
        del unet.forward
        raise RuntimeError("shape mismatch deep inside the UNet")

    unet.forward = crash
    failed = sd_app.post("/v1/images/generations", json={"prompt": "x"})
    assert failed.status_code == 500
    assert "shape mismatch" not in failed.text
    assert failed.json()["error"]["message"].startswith("The server had an error")
    assert sd_app.post("/v1/images/generations", json={"prompt": "x"}).status_code == 200


# -- the pipeline's own safety checker ----------------------------------------------------------


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An SD folder whose safety checker flags every image, and one whose checker flags none."""
    root = tmp_path_factory.mktemp("checked")
    models = [
        ModelSpec(id=safety, backend="diffusers", sizes=["256x256"],
                  options={"path": str(tiny.save("sd", root / safety, safety=safety)), **FAST})
        for safety in ("flags-all", "flags-none")
    ]  # fmt: skip
    settings = Settings(data_dir=root / "data", models=models)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_images_the_safety_checker_flags_are_refused_as_output_moderation(checked: TestClient) -> None:
    http = checked
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (64, 64, 192, 192))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    calls: dict[str, Callable[[str], Any]] = {
        "generation": lambda m: http.post("/v1/images/generations", json={"model": m, "prompt": "a boat"}),
        "edit (inpainting)": lambda m: http.post(
            "/v1/images/edits",
            data={"model": m, "prompt": "a boat"},
            files={
                "image": ("i.png", noisy_png(), "image/png"),
                "mask": ("m.png", buf.getvalue(), "image/png"),
            },
        ),
        "variation": lambda m: http.post(
            "/v1/images/variations", data={"model": m}, files={"image": ("i.png", noisy_png(), "image/png")}
        ),
    }
    for name, call in calls.items():
        refused = call("flags-all")
        assert refused.status_code == 400, name
        error = refused.json()["error"]
        assert error["code"] == "moderation_blocked", name
        assert error["moderation_details"] == {"moderation_stage": "output", "categories": ["sexual"]}
        served = call("flags-none")
        assert served.status_code == 200, name
        image = Image.open(io.BytesIO(base64.b64decode(served.json()["data"][0]["b64_json"])))
        assert image.getextrema() != ((0, 0), (0, 0), (0, 0)), name  # not blacked out
        assert "easel.flagged" not in image.info
    stream = http.post(
        "/v1/images/generations", json={"model": "flags-all", "prompt": "a boat", "stream": True}
    )
    assert stream.status_code == 200
    assert "event: error" in stream.text
    assert '"moderation_stage":"output"' in stream.text
