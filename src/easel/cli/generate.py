"""`easel generate`: a client on the official openai SDK that writes the images it gets."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def _names(fmt: str) -> set[str]:
    """The file extensions a format goes by."""
    return {fmt, "jpg"} if fmt == "jpeg" else {fmt}


def output_paths(path: Path | None, n: int, fmt: str) -> list[Path]:
    """`image.png`, or PATH; with several images, PATH's stem numbered from 1."""
    base = path or Path(f"image.{fmt}")
    if n == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix or '.' + fmt}") for i in range(1, n + 1)]


@click.command()
@click.argument("prompt")
@click.option("-m", "--model", default=None, help="Model id (default: the server's default).")
@click.option("--size", default=None, help="e.g. 1024x1024, or auto.")
@click.option("--quality", default=None, help="low, medium, high, auto (or standard, hd).")
@click.option("-n", "n", type=click.IntRange(1, 10), default=1, help="How many images.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "jpeg", "webp"]),
    default=None,
    help="Output format (gpt-image models).",
)
@click.option("--stream", is_flag=True, help="Stream, showing partial images as they arrive.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write (several images get -1, -2, ... before the suffix).",
)
def generate(
    prompt: str,
    model: str | None,
    size: str | None,
    quality: str | None,
    n: int,
    fmt: str | None,
    stream: bool,
    output: Path | None,
) -> None:
    """Generate images with PROMPT. Honours OPENAI_BASE_URL and OPENAI_API_KEY."""
    import httpx
    import openai

    client = openai.OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        api_key=os.environ.get("OPENAI_API_KEY") or "easel-local",
    )
    console = Console(stderr=True)
    options: dict[str, Any] = {
        k: v for k, v in {"model": model, "size": size, "quality": quality, "output_format": fmt}.items() if v
    }
    images: list[bytes] = []
    try:
        with console.status("generating...") as status:
            if stream:
                events = client.images.generate(prompt=prompt, n=n, stream=True, partial_images=2, **options)
                for event in events:
                    if event.type == "image_generation.partial_image":
                        status.update(
                            f"image {len(images) + 1}/{n}: partial {event.partial_image_index + 1} received"
                        )
                    elif event.type == "image_generation.completed":
                        images.append(base64.b64decode(event.b64_json))
                        status.update(f"image {len(images)}/{n} complete")
            else:
                result = client.images.generate(prompt=prompt, n=n, **options)
                for item in result.data or []:
                    if item.b64_json:
                        images.append(base64.b64decode(item.b64_json))
                    elif item.url:
                        images.append(httpx.get(item.url, timeout=60).raise_for_status().content)
    except openai.APIError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc.message}") from None
    suffix = fmt or (output.suffix.lstrip(".") if output and output.suffix else "png")
    if fmt and output is not None and output.suffix and output.suffix.lstrip(".").lower() not in _names(fmt):
        console.print(
            f"{output.name} names another format: writing {fmt} as {output.with_suffix('.' + fmt).name}"
        )
        output = output.with_suffix("." + fmt)
    for path, data in zip(output_paths(output, len(images), suffix), images, strict=True):
        path.write_bytes(data)
        console.print(f"wrote {path} ({len(data) // 1024} KiB)")
