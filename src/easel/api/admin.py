"""Admin routes (admin key only): manage keys, and read usage shaped like OpenAI's images usage API."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from .. import errors
from ..contract import messages
from ..governance import report
from ..governance.keystore import KeyInfo, KeyNotFoundError, KeySpec, Period
from ..governance.report import BUCKET_LIMITS, GROUPS
from .deps import ServicesDep, require_admin

router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"])
#: What the key table's columns hold: a 32-bit limit, a 62-bit budget (never an overflow 500).
MAX_LIMIT = 2**31 - 1
MAX_BUDGET = 2**62
#: Unix times in a usage query: up to the year 33658 is plenty.
MAX_TIME = 10**12


class NewKey(BaseModel):
    """The body of POST /admin/keys: what the new key may do."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    admin: bool = False
    models: list[str] | None = None
    org: str | None = Field(None, max_length=200)
    project: str | None = Field(None, max_length=200)
    rpm: int | None = Field(None, ge=1, le=MAX_LIMIT)
    ipm: int | None = Field(None, ge=1, le=MAX_LIMIT)
    budget_images: int | None = Field(None, ge=0, le=MAX_BUDGET)
    budget_megapixels: float | None = Field(None, ge=0, le=MAX_BUDGET / 1e6)
    budget_period: Period = "month"


@router.get("/admin/keys", summary="List managed keys")
def list_keys(services: ServicesDep) -> dict[str, Any]:
    keys = services.auth.store.list()
    return {"object": "list", "data": [k.to_json() for k in keys]}


@router.post("/admin/keys", summary="Create a key; its secret is in this answer only")
def create_key(body: NewKey, services: ServicesDep) -> dict[str, Any]:
    _check_models(body.models, services)
    info, secret = services.auth.store.create(KeySpec(**body.model_dump()))
    return {**info.to_json(), "secret": secret}


@router.get("/admin/keys/{key_id}", summary="One managed key")
def get_key(key_id: str, services: ServicesDep) -> dict[str, Any]:
    info: KeyInfo = _found(lambda: services.auth.store.get(key_id))
    return info.to_json()


@router.post("/admin/keys/{key_id}/revoke", summary="Revoke a key at once, on every process")
def revoke_key(key_id: str, services: ServicesDep) -> dict[str, Any]:
    info: KeyInfo = _found(lambda: services.auth.store.revoke(key_id))
    return info.to_json()


@router.post("/admin/keys/{key_id}/rotate", summary="A new secret for a key; the old one stops working")
def rotate_key(key_id: str, services: ServicesDep) -> dict[str, Any]:
    info, secret = _found(lambda: services.auth.store.rotate(key_id))
    return {**info.to_json(), "secret": secret}


@router.get("/v1/organization/usage/images", summary="Images usage in time buckets")
async def images_usage(
    request: Request,
    services: ServicesDep,
    start_time: int | None = Query(None, ge=0, le=MAX_TIME),
    end_time: int | None = Query(None, ge=0, le=MAX_TIME),
    bucket_width: str = "1d",
    limit: int | None = Query(None, ge=-MAX_LIMIT, le=MAX_LIMIT),
    page: str | None = None,
) -> dict[str, Any]:
    query = request.query_params
    if page is not None:
        if not page.isdigit() or int(page) > MAX_TIME:
            raise errors.BadRequestError(
                f"Invalid 'page': {page!r} is not a cursor from an earlier answer's next_page.",
                code="invalid_value",
                param="page",
            )
        start_time = int(page)
    if start_time is None:
        raise messages.missing_required("start_time")
    if bucket_width not in BUCKET_LIMITS:
        raise messages.invalid_value("bucket_width", bucket_width, list(BUCKET_LIMITS))
    most = BUCKET_LIMITS[bucket_width][1]
    if limit is not None and not 1 <= limit <= most:
        raise messages.out_of_range("limit", limit, most if limit > most else 1, above=limit > most)
    groups = [
        g for raw in query.getlist("group_by") + query.getlist("group_by[]") for g in raw.split(",") if g
    ]
    for group in groups:
        if group not in GROUPS:
            raise messages.invalid_value("group_by", group, list(GROUPS))
    await services.gate.flush()  # this process's requests that have ended are counted
    return await anyio.to_thread.run_sync(
        report.images_usage, services.db, start_time, end_time, bucket_width, groups, limit
    )


def _found(action: Any) -> Any:
    try:
        return action()
    except KeyNotFoundError as exc:
        raise errors.NotFoundError(str(exc), param="key_id") from None


def _check_models(models: list[str] | None, services: ServicesDep) -> None:
    for model in models or []:
        if model not in services.service.routes:
            raise messages.invalid_value("models", model, list(services.service.routes))
