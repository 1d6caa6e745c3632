"""create_app(settings) -> FastAPI: services, routers, error rendering; a lifespan for backends and sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from . import __version__, errors, openapi
from .access import Authenticator
from .api import admin, files, health, images, models
from .api.context import RequestContext
from .backends.base import Backend
from .backends.registry import resolve
from .db import Database
from .db.database import sqlite_url
from .gate import Gate
from .imaging import Limits
from .keys import StaticKeys
from .keystore import KeyStore
from .ledger import Ledger
from .metrics import Metrics
from .moderation import Moderator
from .profiles import ModelRules
from .ratelimit import Allowance, RateLimiter
from .service import ImageService, ServedModel
from .settings import Settings
from .sources import RemotePolicy
from .state import Services
from .storage import LocalStorage

log = logging.getLogger("easel")


def build_services(settings: Settings, backends: Mapping[str, Backend] | None = None) -> Services:
    """Everything the routes need; `backends` replaces the configured ones by model id (tests)."""
    served = []
    for spec in settings.models:
        backend = (backends or {}).get(spec.id) or resolve(spec.backend)(spec)
        served.append(ServedModel(rules=ModelRules(spec, backend.capabilities), backend=backend))
    limits = Limits(max_bytes=settings.max_body_bytes, max_pixels=settings.max_image_pixels)
    storage = LocalStorage(settings.data_dir, settings.url_ttl_seconds)
    metrics = Metrics()
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    db.upgrade()
    auth = Authenticator(StaticKeys(settings.api_keys), StaticKeys(settings.admin_keys), KeyStore(db))
    gate = Gate(
        auth,
        RateLimiter(settings.rate_limit_storage, settings.rate_limit_quantum),
        Ledger(db, records=settings.usage_records),
        Moderator(settings.moderation),
        metrics,
        default=Allowance(settings.default_rpm, settings.default_ipm),
    )
    return Services(
        settings=settings,
        service=ImageService(
            served,
            settings.default_model_id,
            storage,
            limits,
            settings.cpu_workers,
            timeout=settings.request_timeout_seconds,
            metrics=metrics,
        ),
        storage=storage,
        db=db,
        auth=auth,
        gate=gate,
        remote=RemotePolicy(
            enabled=settings.allow_remote_images,
            timeout=settings.remote_image_timeout,
            max_bytes=settings.max_body_bytes,
        ),
        metrics=metrics,
    )


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    backends: Mapping[str, Backend] | None = None,
) -> FastAPI:
    """The ASGI app. Pass `services` (or `backends`) to substitute parts in tests."""
    settings = settings or (services.settings if services else Settings())
    services = services or build_services(settings, backends)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for model in services.service.models.values():
            await anyio.to_thread.run_sync(model.backend.start)
        services.service.start()
        background = [
            asyncio.create_task(_sweep_forever(services)),
            asyncio.create_task(services.gate.flush_forever()),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.service.stop()
            await services.gate.flush()  # how the last requests ended
            for model in services.service.models.values():
                await anyio.to_thread.run_sync(model.backend.close)
            await services.storage.close()
            await services.gate.moderator.close()
            services.db.close()

    app = FastAPI(
        title="easel",
        version=__version__,
        lifespan=lifespan,
        description="OpenAI's Images API, self-hosted.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    for router in (images.router, models.router, files.router, health.router, admin.router):
        app.include_router(router)
    app.add_middleware(RequestContext)
    _install_error_handlers(app)
    app.openapi = _openapi(app, services)  # type: ignore[method-assign]
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.APIError)
        return errors.render(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        cls = errors.MethodNotAllowedError if exc.status_code == 405 else errors.NotFoundError
        error: errors.APIError = cls(f"Invalid URL ({request.method} {request.url.path})")
        if exc.status_code not in (404, 405):
            error = errors.APIError(str(exc.detail), type=errors.INVALID_REQUEST)
            error.status = exc.status_code
        return errors.render(error)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return errors.render(
            errors.BadRequestError(f"Invalid request: {first.get('msg', 'invalid input')}.", param=where)
        )

    app.add_exception_handler(errors.APIError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _openapi(app: FastAPI, services: Services) -> Callable[[], dict[str, Any]]:
    from fastapi.openapi.utils import get_openapi

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = openapi.install(schema, services.service.models.values())
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
