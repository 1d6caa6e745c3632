"""GET /health (liveness), /ready (every model loaded; upstreams' state) and /metrics, without auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from .deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health(services: ServicesDep) -> dict[str, Any]:
    return {"status": "ok", "models": list(services.service.models)}


@router.get("/ready", summary="Readiness, and each upstream's state")
async def ready(services: ServicesDep) -> JSONResponse:
    """200 once every model has loaded (503 before, naming what still loads, or what failed); an
    upstream skipped after repeated failures is named."""
    service = services.service
    models: dict[str, Any] = {}
    for model in service.models.values():
        relay = model.relay
        state = {"ready": model.id not in service.loading}
        models[model.id] = {**state, **({"upstream": relay.status()} if relay is not None else {})}
    if service.failure is not None:
        return JSONResponse({"status": "failed", "error": service.failure, "models": models}, 503)
    if service.loading:
        return JSONResponse({"status": "loading", "loading": sorted(service.loading), "models": models}, 503)
    skipped = [m for m, state in models.items() if not state.get("upstream", {}).get("available", True)]
    return JSONResponse({"status": "degraded" if skipped else "ready", "skipped": skipped, "models": models})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
