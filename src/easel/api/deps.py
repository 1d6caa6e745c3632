"""The only accessor of the Services object, and the auth dependency for /v1 routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .. import errors
from ..keys import digest, mask
from ..state import Services

MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


# Both dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in the
# thread pool, a hop per dependency per request for work that never blocks.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def require_key(request: Request, services: ServicesDep) -> None:
    """401 unless the request carries a configured key (only when keys are configured).

    Also names the request's owner for fair queueing: a digest of its key, else its address.
    """
    if not services.keys.enabled:
        request.state.owner = request.client.host if request.client else "anonymous"
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise errors.AuthenticationError(MISSING_KEY)
    if not services.keys.check(key):
        raise errors.AuthenticationError(f"Incorrect API key provided: {mask(key)}.", code="invalid_api_key")
    request.state.owner = digest(key).hex()[:16]


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
