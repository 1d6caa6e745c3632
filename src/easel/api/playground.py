"""GET /playground: the web playground (plain ES modules and CSS from easel's own files, allowed to
talk to this origin only); GET / redirects to it. `playground = false` leaves both out."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

router = APIRouter(include_in_schema=False)

#: The page, its modules and its stylesheet (package data).
FILES = Path(__file__).with_name("playground")
#: Where they are served; the page links them relatively, so a path prefix in front keeps working.
ASSETS = "playground/assets"

#: The browser enforces what the page promises: scripts, styles and requests from this origin
#: only, images from it or made in the page (data: and blob: URLs), no frames, no form posts.
POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])  # fmt: skip
#: The page is always checked again (it is small), and taken for nothing but HTML.
HEADERS = {
    "content-security-policy": POLICY,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
}


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> RedirectResponse:
    return RedirectResponse("playground", status_code=307)


@router.api_route("/playground", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    return FileResponse(FILES / "index.html", headers=HEADERS)


class _Revalidated(StaticFiles):
    """The page's files, checked again on every load (ETag), so an upgrade never runs stale modules."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    """Serve the page's modules and stylesheet under /playground/assets."""
    app.mount(f"/{ASSETS}", _Revalidated(directory=FILES), name="playground-assets")
