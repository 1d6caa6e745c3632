"""GET /files/images/{name}: hosted images behind signed, expiring URLs; no API key needed."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.responses import FileResponse

from .deps import ServicesDep

router = APIRouter(tags=["files"])


@router.get("/files/images/{name}", summary="Download a hosted image by its signed URL")
async def hosted_image(name: str, services: ServicesDep, sig: str = "") -> FileResponse:
    found = services.storage.find(name, sig)
    max_age = max(0, found.expires_at - int(time.time()))
    return FileResponse(
        found.path, media_type=found.media_type, headers={"cache-control": f"private, max-age={max_age}"}
    )
