"""openai-node 7.59 against `easel serve`: today's typed arguments work unchanged (tests/e2e/node)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from typing import Any

import numpy as np
import pytest
from PIL import Image

from easel.contract.catalogue import MODELS
from tests.helpers import ROOT, Server, decode, noisy_png

pytestmark = pytest.mark.slow
NODE = ROOT / "tests" / "e2e" / "node"


@pytest.fixture(scope="module")
def results(lenient_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not installed; .ci/run installs it (Debian's nodejs)"
    assert (NODE / "node_modules" / "openai").is_dir(), (
        "run `npm ci --prefix tests/e2e/node` (make test does)"
    )
    folder = tmp_path_factory.mktemp("node")
    (folder / "image.png").write_bytes(noisy_png((1024, 1024), seed=8))
    markup = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    markup.paste((255, 255, 0, 255), (100, 100, 160, 400))
    markup.save(folder / "markup.png")
    done = subprocess.run(
        [node, str(NODE / "today.mjs")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EASEL_URL": lenient_server.url, "IMAGE": str(folder / "image.png"),
             "MARKUP": str(folder / "markup.png")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    found["folder"] = folder
    return found


def test_free_sizes_xhigh_complexity_and_the_safety_identifier(results: dict[str, Any]) -> None:
    wide = results["wide"]
    assert (wide["size"], wide["quality"], wide["safety"]) == ("1536x864", "xhigh", "node-user-1")
    assert decode(base64.b64decode(wide["b64"])).size == (1536, 864)


def test_gif_and_svg(results: dict[str, Any]) -> None:
    gif = Image.open(io.BytesIO(base64.b64decode(results["gif"]["b64"])))
    assert (results["gif"]["format"], gif.format, getattr(gif, "n_frames", 1)) == ("gif", "GIF", 3)
    assert gif.info["duration"] == 50
    svg = results["svg"]
    assert svg["format"] == "svg"
    assert svg["document"].startswith("<svg ")
    assert (svg["usage"]["model"], svg["usage"]["reasoning_tokens"]) == ("node-author", 64)


def test_stream_events_carry_the_safety_identifier(results: dict[str, Any]) -> None:
    assert results["stream"] == [
        {"type": "image_generation.partial_image", "safety": None},
        {"type": "image_generation.partial_image", "safety": None},
        {"type": "image_generation.completed", "safety": "node-user-2"},
    ]


def test_markup_edit(results: dict[str, Any]) -> None:
    out = np.asarray(decode(base64.b64decode(results["markup"]["b64"])).convert("RGB"), dtype=np.int16)
    original = np.asarray(Image.open(results["folder"] / "image.png").convert("RGB"), dtype=np.int16)
    assert out.shape == original.shape
    assert np.array_equal(out[600:], original[600:]), "far from the marks, the pixels are the input's"
    assert not np.array_equal(out[100:400, 100:160], original[100:400, 100:160])


def test_errors_and_models(results: dict[str, Any]) -> None:
    assert results["bad_size"] == {
        "status": 400,
        "code": "invalid_value",
        "param": "size",
        "message": "Invalid size '9:16'. Expected WIDTHxHEIGHT, for example '1824x1024'.",
        "type": "image_generation_user_error",
    }
    assert results["models"] == [{"id": m, "shutdown_date": MODELS[m].shutdown_date} for m in MODELS]
