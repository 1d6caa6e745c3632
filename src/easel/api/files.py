"""GET /files/images/{name}: hosted images behind the storage's signed, expiring URLs; no API key."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from .deps import ServicesDep

router = APIRouter(tags=["files"])


@router.get("/files/images/{name}", summary="Download a hosted image by its signed URL")
async def hosted_image(name: str, services: ServicesDep, sig: str = "") -> Response:
    found = await services.storage.open(name, sig)
    headers = {
        "cache-control": f"private, max-age={max(0, found.expires_at - int(time.time()))}",
        # Served from easel's own origin: never sniffed into something else, and an SVG may not
        # run script or load anything.
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if found.path is not None:
        return FileResponse(found.path, media_type=found.media_type, headers=headers)
    return Response(found.data or b"", media_type=found.media_type, headers=headers)
