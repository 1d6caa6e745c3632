"""The client commands on the official openai SDK: generate, edit, vary (writing the images they
get, named after their format) and models; `--json` for scripts."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
FORMATS = ["png", "jpeg", "webp", "gif", "svg"]


def _names(fmt: str) -> set[str]:
    """The file extensions a format goes by."""
    return {fmt, "jpg"} if fmt == "jpeg" else {fmt}


def output_paths(path: Path | None, n: int, fmt: str) -> list[Path]:
    """`image.<fmt>`, or PATH; with several images, PATH's stem numbered from 1."""
    base = path or Path(f"image.{fmt}")
    if n == 1:
        return [base]
    return [base.with_name(f"{base.stem}-{i}{base.suffix or '.' + fmt}") for i in range(1, n + 1)]


def _base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def _client() -> Any:
    import openai

    return openai.OpenAI(base_url=_base_url(), api_key=os.environ.get("OPENAI_API_KEY") or "easel-local")


@contextmanager
def _calling() -> Iterator[None]:
    """The SDK's failures as one line: the server's own message, or that no server answers."""
    import openai

    try:
        yield
    except openai.APIConnectionError:
        raise click.ClickException(
            f"no easel server at {_base_url()} — start one with `easel serve` (or set OPENAI_BASE_URL)"
        ) from None
    except openai.APIStatusError as exc:
        raise click.ClickException(f"{exc.status_code} {type(exc).__name__}: {exc.message}") from None


def _options(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


class _Run:
    """One command's images: collected from an answer or a stream, then written and reported."""

    def __init__(self, output: Path | None, fmt: str | None, partials: bool, as_json: bool) -> None:
        self.output, self.fmt, self.partials, self.as_json = output, fmt, partials, as_json
        self.console = Console(stderr=True)
        self.images: list[tuple[bytes, dict[str, Any]]] = []
        self.partial_files: list[str] = []

    def answer(self, result: Any) -> None:
        import httpx

        self.fmt = self.fmt or getattr(result, "output_format", None)
        for item in result.data or []:
            data = base64.b64decode(item.b64_json) if item.b64_json else None
            if data is None and item.url:
                data = httpx.get(item.url, timeout=60).raise_for_status().content
            about = {"revised_prompt": item.revised_prompt, "seed": getattr(item, "seed", None)}
            self.images.append((data or b"", {k: v for k, v in about.items() if v is not None}))

    def stream(self, events: Any, n: int, status: Any) -> None:
        for event in events:
            self.fmt = self.fmt or getattr(event, "output_format", None)
            if event.type.endswith(".partial_image"):
                status.update(f"image {len(self.images) + 1}/{n}: partial {event.partial_image_index + 1}")
                if self.partials:
                    self._save_partial(base64.b64decode(event.b64_json), event.partial_image_index)
            elif event.type.endswith(".completed"):
                self.images.append((base64.b64decode(event.b64_json), {}))
                status.update(f"image {len(self.images)}/{n} complete")

    def _save_partial(self, data: bytes, index: int) -> None:
        fmt = self.fmt or "png"
        base = self._target(fmt)
        path = base.with_name(f"{base.stem}-{len(self.images) + 1}-partial-{index + 1}.{fmt}")
        path.write_bytes(data)
        self.partial_files.append(str(path))

    def _target(self, fmt: str) -> Path:
        """The output path, its extension following the format."""
        output = self.output
        if output is not None and output.suffix.lstrip(".").lower() not in _names(fmt):
            if output.suffix:
                self.console.print(f"{output.name} names another format: writing {fmt} as "
                                   f"{output.with_suffix('.' + fmt).name}")  # fmt: skip
            output = output.with_suffix("." + fmt)
        return output or Path(f"image.{fmt}")

    def write(self) -> None:
        fmt = self.fmt or "png"
        target = self._target(fmt)
        written = []
        for path, (data, about) in zip(output_paths(target, len(self.images), fmt), self.images, strict=True):
            path.write_bytes(data)
            written.append({"path": str(path), "bytes": len(data), **about})
            if not self.as_json:
                self.console.print(f"wrote {path} ({len(data) // 1024} KiB)")
        if self.as_json:
            click.echo(json.dumps({"format": fmt, "images": written, "partials": self.partial_files}))


def _image_command(func: Callable[..., None]) -> Callable[..., None]:
    """The options every image command shares."""
    for option in reversed([
        click.option("-m", "--model", default=None, help="Model id (default: the server's default)."),
        click.option("--size", default=None, help="e.g. 1024x1024, or auto."),
        click.option("-n", "n", type=click.IntRange(1, 10), default=1, help="How many images."),
        click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Where to write; its extension follows the format (several: -1, -2, ...)."),
        click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON (for scripts)."),
    ]):  # fmt: skip
        func = option(func)
    return func


def _render_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--quality", default=None, help="low, medium, high, auto (or standard, hd)."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="Output format."),
        click.option("--stream", is_flag=True, help="Stream, showing progress as partial images arrive."),
        click.option("--save-partials", is_flag=True, help="With --stream: also write each partial image."),
    ]):  # fmt: skip
        func = option(func)
    return func


@click.command()
@click.argument("prompt")
@_image_command
@_render_options
def generate(prompt: str, model: str | None, size: str | None, n: int, output: Path | None, as_json: bool,
             quality: str | None, fmt: str | None, stream: bool, save_partials: bool) -> None:  # fmt: skip
    """Generate images with PROMPT. Honours OPENAI_BASE_URL and OPENAI_API_KEY."""
    run = _Run(output, fmt, save_partials, as_json)
    options = _options(model=model, size=size, quality=quality, output_format=fmt)
    with _calling(), run.console.status("generating...") as status:
        images = _client().images
        if stream:
            events = images.generate(prompt=prompt, n=n, stream=True, partial_images=2, **options)
            run.stream(events, n, status)
        else:
            run.answer(images.generate(prompt=prompt, n=n, **options))
    run.write()


@click.command()
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("-p", "--prompt", required=True, help="What to change.")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A PNG whose transparent pixels are the area to edit.")  # fmt: skip
@click.option("--markup", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A PNG sketched over the image (transparent elsewhere): the edit follows it.")  # fmt: skip
@_image_command
@_render_options
def edit(images: tuple[Path, ...], prompt: str, mask: Path | None, markup: Path | None, model: str | None,
         size: str | None, n: int, output: Path | None, as_json: bool, quality: str | None, fmt: str | None,
         stream: bool, save_partials: bool) -> None:  # fmt: skip
    """Edit IMAGE... with PROMPT, within --mask or following --markup."""
    if mask is not None and markup is not None:
        raise click.UsageError("--mask and --markup cannot be used together: a markup marks the area itself")
    run = _Run(output, fmt, save_partials, as_json)
    files = [(p.name, p.read_bytes()) for p in images]
    options = _options(model=model, size=size, quality=quality, output_format=fmt,
                       mask=(mask.name, mask.read_bytes()) if mask else None,
                       markup=(markup.name, markup.read_bytes()) if markup else None)  # fmt: skip
    with _calling(), run.console.status("editing...") as status:
        client = _client().images
        image = files[0] if len(files) == 1 else files
        if stream:
            events = client.edit(image=image, prompt=prompt, n=n, stream=True, partial_images=2, **options)
            run.stream(events, n, status)
        else:
            run.answer(client.edit(image=image, prompt=prompt, n=n, **options))
    run.write()


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_image_command
def vary(
    image: Path, model: str | None, size: str | None, n: int, output: Path | None, as_json: bool
) -> None:
    """Variations of IMAGE (dall-e-2's endpoint)."""
    run = _Run(output, None, False, as_json)
    with _calling(), run.console.status("varying..."):
        run.answer(_client().images.create_variation(image=(image.name, image.read_bytes()), n=n,
                                                     **_options(model=model, size=size)))  # fmt: skip
    run.write()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's /v1/models entries as JSON.")
def models(as_json: bool) -> None:
    """The models the server answers: id, family, backend, capabilities, shutdown date."""
    from rich.table import Table

    with _calling():
        listed = [m.model_dump() for m in _client().models.list()]
    if as_json:
        click.echo(json.dumps(listed))
        return
    table = Table("id", "family", "backend", "capabilities", "shutdown date")
    for column in (0, 1, 2, 4):
        table.columns[column].no_wrap = True
    for m in listed:
        sizes = ", ".join(m.get("sizes") or []) or (m.get("size_rule") or "")
        can = [", ".join(m.get("operations") or []), sizes, "/".join(m.get("output_formats") or [])]
        extra = [name for name in ("markup", "complexity", "partial_images") if m.get(name)]
        capabilities = "; ".join(c for c in [*can, " ".join(extra)] if c)
        table.add_row(
            m["id"], m.get("family") or "", m.get("backend") or "", capabilities, m.get("shutdown_date") or ""
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # piped: one row per line
