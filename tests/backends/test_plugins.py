"""A third-party backend is a package with one entry point: the guide's example, installed and served."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import sdk
from tests.helpers import ROOT, Server, decode, items, start_server

pytestmark = pytest.mark.slow
GUIDE = (ROOT / "docs" / "backends.md").read_text()


def block(language: str, containing: str) -> str:
    """The guide's one code block in `language` that contains `containing`."""
    (found,) = [b for b in re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S) if containing in b]
    return str(found)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guide's package, pip-installed (offline, no build isolation) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "easel-sepia"
    package.mkdir()
    (package / "pyproject.toml").write_text(block("toml", "[build-system]"))
    (package / "easel_sepia.py").write_text(block("python", "class SepiaBackend"))
    target = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(package)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("easel_sepia-1.0.0.dist-info/entry_points.txt"))
    return target


def environment(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def server(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = block("toml", 'backend = "sepia"')
    s = start_server(tmp_path_factory.mktemp("sepia"), config, env=environment(site))
    yield s
    s.stop()


def test_the_guides_backend_serves_generations(server: Server) -> None:
    client = sdk(server)
    result = client.images.generate(model="sepia-1", prompt="an old photograph", size="256x256", n=2,
                                    extra_body={"seed": 3})  # fmt: skip
    first, second = (decode(base64.b64decode(item.b64_json or "")) for item in items(result))
    assert first.getpixel((0, 0)) in ((152, 86, 20), (40, 24, 8))  # the wash (tone 40), or a grain
    assert first.tobytes() != second.tobytes(), "image i has seed + i: different grain"
    again = client.images.generate(model="sepia-1", prompt="x", size="256x256", extra_body={"seed": 4})
    assert decode(base64.b64decode(items(again)[0].b64_json or "")).tobytes() == second.tobytes()
    entry = client.models.retrieve("sepia-1").model_extra or {}
    assert (entry["backend"], entry["operations"]) == ("sepia", ["generations"])


def test_what_it_does_not_declare_is_refused_by_name(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(server).images.edit(model="sepia-1", image=("i.png", b"", "image/png"), prompt="x")
    assert refused.value.body["param"] == "model"  # type: ignore[index]
    assert "does not support image edits" in refused.value.body["message"]  # type: ignore[index]


def test_it_streams_its_partial_image(server: Server) -> None:
    events = list(sdk(server).images.generate(model="sepia-1", prompt="x", size="256x256", stream=True,
                                              partial_images=1))  # fmt: skip
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]


def test_its_options_are_validated_and_documented(site: Path, tmp_path: Path) -> None:
    typo = block("toml", 'backend = "sepia"').replace("tone = 40", "tonne = 3")
    with pytest.raises(RuntimeError, match=r"invalid options for backend 'sepia': tonne: Extra inputs"):
        start_server(tmp_path, typo, env=environment(site))
    reference = subprocess.run(
        [sys.executable, "-m", "easel", "config-reference"],
        capture_output=True, text=True, env={**os.environ, **environment(site)}, timeout=120, check=True,
    ).stdout  # fmt: skip
    section = reference.split("## Options of the sepia backend", 1)[1]
    assert "| `tone` | `40` | How warm the brown is, from 0 to 100. |" in section
