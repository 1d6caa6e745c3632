"""The only accessor of the Services object, the auth dependencies, and a request's `Call`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..governance.auth import Caller
from ..memory import Hold
from ..service import Call
from ..services import Services


# Both dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in the
# thread pool, a hop per dependency per request for work that never blocks.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def require_key(request: Request, services: ServicesDep) -> None:
    """Names the caller (401/403 when its key is missing, wrong or refused); see `governance.auth`.

    The caller's owner id is the request's lane for fair queueing.
    """
    await _name_caller(request, services, cached=False)


async def require_image_key(request: Request, services: ServicesDep) -> None:
    """`require_key` for routes that pass the gate: a managed key may come from memory, since
    the gate's charge confirms it is still live in the same statement."""
    await _name_caller(request, services, cached=True)


async def _name_caller(request: Request, services: Services, *, cached: bool) -> None:
    headers = request.headers
    request.state.caller = await services.auth.caller(
        headers.get("authorization", ""),
        headers.get("openai-organization"),
        headers.get("openai-project"),
        request.client.host if request.client else "anonymous",
        cached=cached,
    )


async def require_admin(request: Request, services: ServicesDep) -> None:
    """401 without a key, 403 for a key that is not an admin key."""
    request.state.admin = await services.auth.admin(request.headers.get("authorization", ""))


def caller(request: Request) -> Caller:
    """The caller `require_key` named."""
    found: Caller = request.state.caller
    return found


def new_call(request: Request, services: Services, hold: Hold | None = None) -> Call:
    """The image request as the service sees it (kept on the request for its logs and headers).
    Call once its body is read: from then on, only a disconnect can arrive."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    call = Call(
        caller=caller(request),
        request_id=request.scope.get("state", {}).get("request_id", ""),
        origin=_forwarded_origin(request, services),
        gone=gone,
        hold=hold,
    )
    request.state.call = call
    return call


def _forwarded_origin(request: Request, services: Services) -> str | None:
    """The origin a trusted proxy says the client used, when no public base URL is configured."""
    settings = services.settings
    if settings.public_base_url is not None or not settings.trust_proxy:
        return None
    host = request.headers.get("x-forwarded-host")
    if not host:
        return None
    proto = request.headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    return f"{proto}://{host.split(',')[0].strip()}"
