"""The `easel` command: generate against a running server, help, and the configuration reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from easel.cli import cli
from easel.cli.client import output_paths
from tests.helpers import ROOT, Server, decode

pytestmark = pytest.mark.slow


def run(args: list[str], server: Server, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": "sk-x"}
    return subprocess.run(
        [sys.executable, "-m", "easel", *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=60
    )


def test_generate_writes_images(lenient_server: Server, tmp_path: Path) -> None:
    done = run(
        ["generate", "a quiet harbour", "-n", "2", "--size", "512x512", "-o", "harbour.png"],
        lenient_server,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    for name in ("harbour-1.png", "harbour-2.png"):
        assert decode((tmp_path / name).read_bytes()).size == (512, 512)
    assert "wrote harbour-1.png" in done.stderr


def test_generate_streams_and_follows_urls(lenient_server: Server, tmp_path: Path) -> None:
    streamed = run(
        ["generate", "waves", "--stream", "--format", "webp", "--size", "256x256"], lenient_server, tmp_path
    )
    assert streamed.returncode == 0, streamed.stderr
    assert decode((tmp_path / "image.webp").read_bytes()).format == "WEBP"
    hosted = run(
        ["generate", "waves", "-m", "dall-e-2", "--size", "256x256", "-o", "d2.png"], lenient_server, tmp_path
    )
    assert hosted.returncode == 0, hosted.stderr
    assert decode((tmp_path / "d2.png").read_bytes()).size == (256, 256)


def test_generate_reports_api_errors(lenient_server: Server, tmp_path: Path) -> None:
    done = run(["generate", "x", "--size", "3x3"], lenient_server, tmp_path)
    assert done.returncode == 1
    assert "BadRequestError" in done.stderr
    assert "Invalid size '3x3'. Width and height must both be divisible by 16." in done.stderr


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output
    assert "generate" in result.output


def test_output_paths() -> None:
    assert output_paths(None, 1, "png") == [Path("image.png")]
    assert output_paths(Path("a/b.jpg"), 2, "jpeg") == [Path("a/b-1.jpg"), Path("a/b-2.jpg")]


def test_configuration_reference_is_current() -> None:
    result = CliRunner().invoke(cli, ["config-reference"])
    assert result.exit_code == 0
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert result.output == committed, "run: easel config-reference > docs/configuration.md"


def test_serve_prints_its_url_and_every_id_it_answers(lenient_server: Server) -> None:
    banner = lenient_server.log.read_text()
    assert f"easel serving at http://127.0.0.1:{lenient_server.port}/v1" in banner
    assert "gpt-image-2.6-sunburst  (lenient, rules of gpt-image-2.6-sunburst, backend placeholder)" in banner
    also = banner.split("also answering, each by its own rules: ", 1)[1].splitlines()[0]
    assert also.split(", ")[-2:] == ["dall-e-3", "dall-e-2"]
    assert "auth: none (no keys set)" in banner
