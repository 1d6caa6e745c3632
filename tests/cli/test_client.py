"""The client commands against a real server: edit (mask, markup), vary, models, streams that save
their partials, --json for scripts, names that follow the format, and no server at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli.test_cli import run
from tests.helpers import Server, decode, free_port, markup_png, mask_png, png

pytestmark = pytest.mark.slow


def test_edit_with_a_mask_keeps_what_is_outside_it(lenient_server: Server, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(png((256, 256)))
    (tmp_path / "mask.png").write_bytes(mask_png((256, 256), (0, 0, 128, 128)))
    done = run(["edit", "in.png", "-p", "a red door", "--mask", "mask.png", "--size", "256x256",
                "-m", "gpt-image-1", "-o", "out.png", "--json"], lenient_server, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["format"] == "png"
    assert [i["path"] for i in said["images"]] == ["out.png"]
    out = np.asarray(decode((tmp_path / "out.png").read_bytes()).convert("RGB"), dtype=np.int16)
    original = np.asarray(decode(png((256, 256))).convert("RGB"), dtype=np.int16)
    assert np.array_equal(out[128:, 128:], original[128:, 128:])  # outside the hole: as it was
    assert not np.array_equal(out[:128, :128], original[:128, :128])


def test_edit_with_a_markup_and_the_refusal_of_both(lenient_server: Server, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(png((1024, 1024)))
    (tmp_path / "sketch.png").write_bytes(markup_png((1024, 1024), (100, 100, 300, 140)))
    done = run(["edit", "in.png", "-p", "a kite", "--markup", "sketch.png", "-m", "gpt-image-2",
                "--format", "webp", "-o", "kite.png"], lenient_server, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert decode((tmp_path / "kite.webp").read_bytes()).format == "WEBP"  # named after its format
    assert not (tmp_path / "kite.png").exists()
    (tmp_path / "mask.png").write_bytes(mask_png((1024, 1024), (0, 0, 8, 8)))
    both = run(
        ["edit", "in.png", "-p", "x", "--markup", "sketch.png", "--mask", "mask.png"],
        lenient_server,
        tmp_path,
    )
    assert both.returncode == 2
    assert "--mask and --markup cannot be used together" in both.stderr


def test_vary_writes_variations(lenient_server: Server, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(png((256, 256)))
    done = run(["vary", "in.png", "-n", "2", "--size", "256x256", "--json"], lenient_server, tmp_path)
    assert done.returncode == 0, done.stderr
    paths = [i["path"] for i in json.loads(done.stdout)["images"]]
    assert paths == ["image-1.png", "image-2.png"]
    assert all(decode((tmp_path / p).read_bytes()).size == (256, 256) for p in paths)


def test_a_stream_shows_progress_and_saves_its_partials(lenient_server: Server, tmp_path: Path) -> None:
    done = run(["generate", "a lighthouse", "--stream", "--save-partials", "--size", "1024x1024",
                "-m", "gpt-image-1", "--format", "jpeg", "--json"], lenient_server, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["partials"] == ["image-1-partial-1.jpeg", "image-1-partial-2.jpeg"]
    assert [i["path"] for i in said["images"]] == ["image.jpeg"]
    for name in [*said["partials"], "image.jpeg"]:
        assert decode((tmp_path / name).read_bytes()).format == "JPEG"


def test_models_lists_what_the_server_answers(lenient_server: Server, tmp_path: Path) -> None:
    table = run(["models"], lenient_server, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "gpt-image-2.6-sunburst" in table.stdout
    assert "dall-e-2" in table.stdout
    assert "2026-" in table.stdout  # a retired model's shutdown date
    listed = json.loads(run(["models", "--json"], lenient_server, tmp_path).stdout)
    entry = next(m for m in listed if m["id"] == "dall-e-2")
    assert entry["family"] == "dall-e-2"
    assert entry["shutdown_date"]


def test_no_server_says_how_to_start_one(tmp_path: Path) -> None:
    nobody = Server.__new__(Server)
    nobody.port = free_port()  # nothing listens there
    done = run(["generate", "a kite"], nobody, tmp_path)
    assert done.returncode == 1
    assert (
        f"no easel server at http://127.0.0.1:{nobody.port}/v1 — start one with `easel serve`" in done.stderr
    )
    assert "Traceback" not in done.stderr
