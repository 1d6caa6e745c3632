"""Test helpers: images built in memory, and a running `easel serve` subprocess."""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai.types import Image as ImageItem
from openai.types import ImagesResponse
from PIL import Image

#: The repository's root, for tests that read its README and docs.
ROOT = Path(__file__).resolve().parents[1]
#: How long `start_server` waits for /health.
START_DEADLINE = 300
#: easel's first default configuration: three models, gpt-image-1 first (and so the default).
CLASSIC_MODELS = [{"id": "gpt-image-1"}, {"id": "dall-e-2"}, {"id": "dall-e-3"}]


#: The sizes the tiny diffusers models of the tests accept.
SIZES = '["256x256", "512x512", "256x384"]'


def model_toml(model_id: str, folder: Path, extra: str = "", sizes: str = SIZES) -> str:
    """A `[[models]]` table serving the tiny pipeline saved at `folder`."""
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


def png(size: tuple[int, int] = (256, 256), mode: str = "RGB", colour: object = (40, 90, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")  # type: ignore[arg-type]
    return buf.getvalue()


def noisy_png(size: tuple[int, int] = (256, 256), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def mask_png(size: tuple[int, int], hole: tuple[int, int, int, int]) -> bytes:
    """An opaque RGBA mask with a fully transparent (alpha 0) rectangle: the edit area."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), hole)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


def markup_png(
    size: tuple[int, int], stroke: tuple[int, int, int, int], colour: object = (255, 0, 0, 255)
) -> bytes:
    """A markup for an edit: transparent but for one opaque stroke, where the edit goes."""
    markup = Image.new("RGBA", size, (0, 0, 0, 0))
    markup.paste(colour, stroke)  # type: ignore[arg-type]
    buf = io.BytesIO()
    markup.save(buf, "PNG")
    return buf.getvalue()


def refusal(call: Callable[[], object]) -> dict[str, Any]:
    """The error body of the 400 `call` gets, never an unknown parameter (CONTRACT §8)."""
    with pytest.raises(openai.BadRequestError) as refused:
        call()
    body: dict[str, Any] = refused.value.body  # type: ignore[assignment]
    assert body["code"] != "unknown_parameter", body
    return body


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims an enormous image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def items(result: ImagesResponse) -> list[ImageItem]:
    """A response's `data[]` (the SDK types it as optional; easel always sends it)."""
    assert result.data is not None
    return result.data


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path
    #: How long `stop` waits for it to exit after SIGTERM (the Ray mode removes its application).
    grace: float = 10.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(self.grace)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(
    tmp: Path,
    config: str = "",
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    data_dir: Path | None = None,
    port: int | None = None,
    grace: float = 10.0,
) -> Server:
    """`easel serve` in a subprocess on a free loopback port (or `port`), once /ready answers."""
    port = port or free_port()
    data_dir = data_dir or tmp / "data"
    cmd = [sys.executable, "-m", "easel", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    if config:
        path = tmp / "easel.toml"
        path.write_text(config)
        cmd += ["--config", str(path)]
    log = tmp / "server.log"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    process = subprocess.Popen([*cmd, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=full_env)
    server = Server(process, port, data_dir, log, grace)
    try:
        wait_until_up(process, f"{server.url}/ready", log, "easel serve")  # every model loaded
    except RuntimeError:
        server.stop()
        raise
    return server


def wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path, name: str) -> None:
    """Return once `url` answers 200. Minutes, not seconds: a loaded machine loads pipelines
    slowly. A process that exits fails at once, with its log."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-5000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start within {START_DEADLINE} s: {log.read_text()[-5000:]}")
