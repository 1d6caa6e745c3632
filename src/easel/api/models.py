"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus each model's capabilities."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..contract import messages
from ..contract.responses import ModelEntry, ModelList
from .deps import ServicesDep, require_key

router = APIRouter(prefix="/v1/models", dependencies=[Depends(require_key)], tags=["models"])


@router.get("", summary="List the served models", response_model=None)
async def list_models(services: ServicesDep) -> ModelList:
    service = services.service
    return {"object": "list", "data": [r.describe(service.started) for r in service.routes.values()]}


@router.get("/{model_id:path}", summary="Describe one served model", response_model=None)
async def get_model(model_id: str, services: ServicesDep) -> ModelEntry:
    route = services.service.routes.get(model_id)
    if route is None:
        raise messages.model_not_found(model_id)
    return route.describe(services.service.started)
