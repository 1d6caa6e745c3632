"""The only accessor of the Services object, and the auth dependency for /v1 routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..access import Caller
from ..state import Services


# Both dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in the
# thread pool, a hop per dependency per request for work that never blocks.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def require_key(request: Request, services: ServicesDep) -> None:
    """Names the caller (401/403 when its key is missing, wrong or refused); see `access`.

    The caller's owner id is the request's lane for fair queueing.
    """
    await _name_caller(request, services, cached=False)


async def require_image_key(request: Request, services: ServicesDep) -> None:
    """`require_key` for routes that pass the gate: a managed key may come from memory, since
    the gate's charge confirms it is still live in the same statement."""
    await _name_caller(request, services, cached=True)


async def _name_caller(request: Request, services: Services, *, cached: bool) -> None:
    headers = request.headers
    caller = await services.auth.caller(
        headers.get("authorization", ""),
        headers.get("openai-organization"),
        headers.get("openai-project"),
        request.client.host if request.client else "anonymous",
        cached=cached,
    )
    request.state.caller = caller
    request.state.owner = caller.owner


async def require_admin(request: Request, services: ServicesDep) -> None:
    """401 without a key, 403 for a key that is not an admin key."""
    request.state.admin = await services.auth.admin(request.headers.get("authorization", ""))


def caller(request: Request) -> Caller:
    """The caller `require_key` named."""
    found: Caller = request.state.caller
    return found


def owner(request: Request) -> str:
    """Whose request this is, for fair queueing (set by `require_key`)."""
    return str(getattr(request.state, "owner", "anonymous"))


def base_url(request: Request, services: Services) -> str:
    """The base of hosted URLs: configured, or a trusted proxy's forwarded host, or the bind."""
    settings = services.settings
    if settings.public_base_url is None and settings.trust_proxy:
        host = request.headers.get("x-forwarded-host")
        if host:
            proto = request.headers.get("x-forwarded-proto", "https").split(",")[0].strip()
            return f"{proto}://{host.split(',')[0].strip()}"
    return settings.base_url
