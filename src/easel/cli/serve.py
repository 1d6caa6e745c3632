"""`easel serve`: bind (loopback by default), print the base URL and models, run uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from .. import logs
from ..contract.profiles import Surface
from ..errors import ConfigError
from ..settings import Settings, load_settings


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def describe(settings: Settings, managed_keys: bool = False) -> str:
    lines = [f"easel serving at [bold]{settings.base_url}/v1[/bold]"]
    for spec in settings.models:
        mode = "strict" if spec.strict else "lenient"
        mirror = Surface.of(spec).mirror.id
        lines.append(f"  {spec.id}  ({mode}, rules of {mirror}, backend {spec.backend})")
        if spec.aliases:
            lines.append(f"    also answering, each by its own rules: {', '.join(spec.aliases)}")
    keyed = bool(settings.api_keys) or managed_keys
    lines.append("auth: " + ("API keys required" if keyed else "none (no keys set)"))
    return "\n".join(lines)


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8000; 0 = any free).")
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A TOML configuration file.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where hosted images and the signing secret live.",
)
@click.option(
    "--allow-open", is_flag=True, default=None, help="Serve a non-loopback address without API keys."
)
@click.option("--log-level", default=None, help="debug, info, warning or error.")
def serve(
    host: str | None,
    port: int | None,
    config: Path | None,
    data_dir: Path | None,
    allow_open: bool | None,
    log_level: str | None,
) -> None:
    """Start the server with the embedded defaults or a configuration file."""
    from ..app import create_app

    flags: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "allow_open": allow_open,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    try:
        settings = load_settings(config, **flags)
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None
    logs.configure(settings.log_level, settings.log_format)
    sock = _bind(settings.host, settings.port)
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    managed = app.state.services.auth.store.any_keys()
    if not settings.is_loopback and not settings.api_keys and not managed and not settings.allow_open:
        raise click.ClickException(
            f"refusing to serve {settings.host} without API keys: set EASEL_API_KEYS (or api_keys in "
            "the config), create one with `easel keys create`, or pass --allow-open to serve it open "
            "on purpose."
        )
    Console(stderr=True, soft_wrap=True).print(describe(settings, managed), highlight=False)
    _run(app, settings, sock)


def _run(app: Any, settings: Settings, sock: socket.socket) -> None:
    """uvicorn, with a SIGTERM that drains: stop accepting, 503 what waits, finish what runs.

    uvicorn then waits up to `shutdown_grace_seconds` for open requests before it exits.
    """
    import uvicorn

    drain: Callable[[], None] = app.state.services.service.drain

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Runs in the loop's thread between two bytecodes: schedule the drain, don't run it.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon_threadsafe(drain)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through easel's handler and format too
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    DrainingServer(config).run(sockets=[sock])
