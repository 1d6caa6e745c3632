"""Readiness: the port answers while models load, /ready is 503 naming what still loads (or what
failed) and 200 once all have, a request for a loading model is a retryable 503, and a model that
cannot load stops `easel serve` with its reason."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from easel.app import create_app
from easel.backends.placeholder import PlaceholderBackend
from easel.settings import ModelSpec, Settings
from tests.fakes import STUCK
from tests.helpers import free_port, model_toml


class SlowToLoad(PlaceholderBackend):
    """The placeholder, whose `start` waits on a gate (as weights take their time)."""

    def __init__(self, spec: ModelSpec, fail: bool = False) -> None:
        super().__init__(spec)
        self.gate = threading.Event()
        self.fail = fail

    def start(self) -> None:
        assert self.gate.wait(STUCK)
        if self.fail:
            raise OSError("unet/diffusion_pytorch_model.safetensors is truncated")


def test_the_port_answers_while_a_model_loads(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, models=[ModelSpec(id="gpt-image-1"), ModelSpec(id="dall-e-2")])
    slow = SlowToLoad(settings.models[1])
    app = create_app(settings, backends={"dall-e-2": slow}, load_in_background=True)
    with TestClient(app) as http:
        assert http.get("/health").status_code == 200
        waiting = http.get("/ready")
        assert waiting.status_code == 503
        assert waiting.json()["loading"] == ["dall-e-2"]
        body = {"model": "dall-e-2", "prompt": "a kite", "size": "256x256"}
        refused = http.post("/v1/images/generations", json=body)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "model_loading"
        assert "retry-after" in refused.headers
        gpt = {"model": "gpt-image-1", "prompt": "a kite", "size": "1024x1024"}
        deadline = time.monotonic() + STUCK  # the first model loads on its own, quickly
        while http.post("/v1/images/generations", json=gpt).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        slow.gate.set()
        while http.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.01)
        assert http.get("/ready").json()["status"] == "ready"
        assert http.post("/v1/images/generations", json=body).status_code == 200


def test_a_model_that_fails_to_load_is_named_by_ready(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, models=[ModelSpec(id="gpt-image-1")])
    broken = SlowToLoad(settings.models[0], fail=True)
    broken.gate.set()
    with TestClient(create_app(settings, backends={"gpt-image-1": broken}, load_in_background=True)) as http:
        deadline = time.monotonic() + STUCK
        while (ready := http.get("/ready").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ready["status"] == "failed"
        assert (
            "model 'gpt-image-1' failed to load: unet/diffusion_pytorch_model.safetensors" in ready["error"]
        )


@pytest.mark.slow
def test_easel_serve_stops_with_the_reason_a_model_cannot_load(
    tmp_path: Path, pipelines: dict[str, Path]
) -> None:
    folder = tmp_path / "sd"
    shutil.copytree(pipelines["sd"], folder)
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:100])  # truncated
    (tmp_path / "easel.toml").write_text(model_toml("sd", folder))
    command = [sys.executable, "-m", "easel", "serve", "--port", str(free_port()), "--config",
               str(tmp_path / "easel.toml"), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "model 'sd' failed to load" in done.stderr
    assert "Check its [models.options]" in done.stderr
    assert "Traceback" not in done.stderr
