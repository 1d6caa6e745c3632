"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus each model's capabilities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from .. import errors
from .deps import ServicesDep, require_key

router = APIRouter(prefix="/v1/models", dependencies=[Depends(require_key)], tags=["models"])


@router.get("", summary="List the served models")
async def list_models(services: ServicesDep) -> dict[str, Any]:
    service = services.service
    return {"object": "list", "data": [m.describe(service.started) for m in service.models.values()]}


@router.get("/{model_id:path}", summary="Describe one served model")
async def get_model(model_id: str, services: ServicesDep) -> dict[str, Any]:
    model = services.service.models.get(model_id)
    if model is None:
        raise errors.model_not_found(model_id)
    return model.describe(services.service.started)
