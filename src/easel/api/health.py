"""GET /health (liveness and the served model ids) and GET /metrics (Prometheus), without auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from .deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health(services: ServicesDep) -> dict[str, Any]:
    return {"status": "ok", "models": list(services.service.models)}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
