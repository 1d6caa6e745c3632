"""`easel serve`: bind (loopback by default), print the base URL and models, run uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import socket
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console

from .. import logs
from ..contract.profiles import Surface
from ..errors import ConfigError
from ..settings import Settings, load_settings


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a message that says what stops it and how to fix it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: another process already uses that port. Stop it, "
                "or choose another port with --port (or EASEL_PORT; 0 picks a free one)."
            ) from None
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Check --host (or EASEL_HOST) and --port."
        ) from None
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
@click.option(
    "--ray", "on_ray", is_flag=True, help="Run on Ray Serve: an ingress and a deployment per model "
    "(extra easel-server[ray]; docs/scale-out.md)."
)  # fmt: skip
@click.option(
    "--ray-address", default=None, help="The Ray cluster to join (default: [ray] address; none: a local one)."
)
def serve(
    host: str | None,
    port: int | None,
    config: Path | None,
    data_dir: Path | None,
    allow_open: bool | None,
    log_level: str | None,
    on_ray: bool,
    ray_address: str | None,
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
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if ray_address is not None:
        settings = settings.model_copy(
            update={"ray": settings.ray.model_copy(update={"address": ray_address})}
        )
    logs.configure(settings.log_level, settings.log_format)
    sock = None
    if on_ray and settings.ray.address is not None and settings.port == 0:
        raise click.ClickException("the Ray mode on a cluster needs a fixed port: pass --port (EASEL_PORT)")
    if not on_ray or settings.ray.address is None:  # a local Serve proxy binds here, so check it can
        sock = _bind(settings.host, settings.port)
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    try:
        # In the Ray mode too: the configuration, the backends' options, the bucket and the
        # database (migrated once, here) are checked before anything is deployed.
        app = create_app(settings, load_in_background=not on_ray)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    managed = app.state.services.auth.store.any_keys()
    if not settings.is_loopback and not settings.api_keys and not managed and not settings.allow_open:
        raise click.ClickException(
            f"refusing to serve {settings.host} without API keys: set EASEL_API_KEYS (or api_keys in "
            "the config), create one with `easel keys create`, or pass --allow-open to serve it open "
            "on purpose."
        )
    console = Console(stderr=True, soft_wrap=True)
    console.print(describe(settings, managed), highlight=False)
    unreachable = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - comparing, not binding
    if unreachable and settings.public_base_url is None and not settings.trust_proxy:
        console.print(
            f"warning: hosted image URLs will start with {settings.base_url}, which clients cannot reach. "
            "Set public_base_url (EASEL_PUBLIC_BASE_URL) to the address clients use, or trust_proxy = true "
            "behind a proxy that sends X-Forwarded-Host.",
            highlight=False,
        )
    if on_ray:
        app.state.services.db.close()
        if sock is not None:
            sock.close()  # Serve's proxy binds it
        _serve_on_ray(settings, console)
        return
    assert sock is not None
    _run(app, settings, sock)


def _serve_on_ray(settings: Settings, console: Console) -> None:
    import importlib.util

    from ..cluster.launch import serve_on_ray

    if importlib.util.find_spec("ray") is None:
        raise click.ClickException("the Ray mode needs Ray Serve: pip install 'easel-server[ray]'")
    try:
        serve_on_ray(settings, lambda line: console.print(line, highlight=False))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(app: Any, settings: Settings, sock: socket.socket) -> None:
    """uvicorn, with a SIGTERM that drains: stop accepting, 503 what waits, finish what runs.

    uvicorn then waits up to `shutdown_grace_seconds` for open requests before it exits.
    """
    import uvicorn
    from sse_starlette.sse import AppStatus

    service = app.state.services.service
    grace = settings.shutdown_grace_seconds
    # sse-starlette would cut every stream at SIGTERM. easel's own drain ends them instead, a
    # running one with its images or, past the grace, with an error event; sse-starlette's switch
    # stays as a backstop, for a stream stuck anywhere else.
    AppStatus.enable_automatic_graceful_drain = False  # what disable_automatic_graceful_drain() sets

    def drain() -> None:
        service.drain(grace)
        asyncio.get_running_loop().call_later(grace + 5, setattr, AppStatus, "should_exit", True)

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Runs in the loop's thread between two bytecodes: schedule the drain, don't run it.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon_threadsafe(drain)
            super().handle_exit(sig, frame)

    from .connections import ReadLimits, guarded_protocol

    s = settings
    limits = ReadLimits(s.max_header_bytes, s.header_timeout_seconds, s.body_timeout_seconds)
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits),
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through easel's handler and format too
        access_log=False,
        # easel answers what still runs when its own grace ends; uvicorn's comes later, so those
        # answers are sent, never its plain-text 500.
        timeout_graceful_shutdown=math.ceil(grace) + 10,
    )
    server = DrainingServer(config)
    service.on_failure = lambda: setattr(server, "should_exit", True)
    server.run(sockets=[sock])
    if service.failure is not None:
        raise click.ClickException(f"{service.failure}. Check its [models.options] (docs/diffusers.md).")
