"""create_app(settings) -> FastAPI: the services, the routers, error rendering, and a lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI

from . import __version__
from .api import admin, docs, files, handlers, health, images, models, playground
from .api.context import RequestContext
from .backends import AnyBackend
from .contract import openapi
from .services import Services, build_services
from .settings import Settings

log = logging.getLogger("easel")


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    backends: Mapping[str, AnyBackend] | None = None,
    proxy_request_id: bool = False,
    replica: str | None = None,
    load_in_background: bool = False,
) -> FastAPI:
    """The ASGI app. Pass `services` (or `backends`) to substitute parts in tests;
    `proxy_request_id` when the proxy in front names requests (Ray Serve's, which sends
    `x-request-id` itself), and `replica` to name this replica in every response;
    `load_in_background` answers (503 for a model still loading) while the models load."""
    settings = settings or (services.settings if services else Settings())
    services = services or build_services(settings, backends)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.service.open(wait=not load_in_background)
        sweeper = asyncio.create_task(_sweep_forever(services))
        writer = asyncio.create_task(services.gate.flush_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await services.service.close()
            services.gate.stop_flushing()  # its last round writes how the last requests ended
            await writer
            await services.storage.close()
            await services.gate.moderator.close()
            services.db.close()

    app = FastAPI(
        title="easel",
        version=__version__,
        lifespan=lifespan,
        description="OpenAI's Images API, self-hosted.",
        docs_url=None,  # api/docs.py serves Swagger UI from local files
        redoc_url=None,
    )
    app.state.services = services
    for router in (images.router, models.router, files.router, health.router, admin.router, docs.router):
        app.include_router(router)
    docs.mount(app)
    if settings.playground:
        app.include_router(playground.router)
        playground.mount(app)
    app.add_middleware(RequestContext, proxy_request_id=proxy_request_id, replica=replica)
    handlers.install(app)
    app.openapi = _openapi(app, services)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, services: Services) -> Callable[[], dict[str, Any]]:
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            rules = [route.rules for route in services.service.routes.values()]
            app.openapi_schema = openapi.install(schema, rules)
        return app.openapi_schema

    return build


async def _sweep_forever(services: Services) -> None:
    interval = services.settings.sweep_interval_seconds
    while True:
        try:
            removed = await services.storage.sweep()
            if removed:
                log.info("swept %d expired hosted images", removed)
        except OSError:
            log.exception("sweeping hosted images failed")
        await asyncio.sleep(interval)
