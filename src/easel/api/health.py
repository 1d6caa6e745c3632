"""GET /health: liveness and the served model ids, without auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health(services: ServicesDep) -> dict[str, Any]:
    return {"status": "ok", "models": list(services.service.models)}
