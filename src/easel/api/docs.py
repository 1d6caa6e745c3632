"""GET /docs: Swagger UI 5 from the fastapi-offline package's files, served by easel itself (no
CDN, so it works offline), over easel's own OpenAPI 3.1 document."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

#: Where the Swagger UI files are served; relative links keep working behind a path prefix.
ASSETS = "docs/assets"

#: FastAPI's own Swagger UI page, but for the files (easel's), the document it loads and no
#: validator badge (which would ask validator.swagger.io): nothing from any other origin.
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>easel: OpenAI's Images API, self-hosted</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js" charset="utf-8"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
</script>
</body>
</html>
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE)


def mount(app: FastAPI) -> None:
    """Serve the Swagger UI files (the fastapi-offline package's) under /docs/assets."""
    from importlib.resources import files

    static = files("fastapi_offline") / "static"
    app.mount(f"/{ASSETS}", StaticFiles(directory=str(static)), name="docs-assets")
