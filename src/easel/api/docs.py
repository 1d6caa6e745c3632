"""GET /docs: Swagger UI from the packaged swagger-ui-bundle, served by easel itself (no CDN, so it
works offline), over easel's own OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

#: Where the Swagger UI files are served; relative links keep working behind a path prefix.
ASSETS = "docs/assets"

#: swagger-ui-dist's own index.html and initializer, but for the document it loads and no
#: validator badge (which would ask validator.swagger.io): nothing from any other origin.
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>easel: OpenAI's Images API, self-hosted</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="stylesheet" href="{ASSETS}/index.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="{ASSETS}/swagger-ui-standalone-preset.js" charset="utf-8"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: "StandaloneLayout",
}});
</script>
</body>
</html>
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE)


def mount(app: FastAPI) -> None:
    """Serve the Swagger UI files (the swagger-ui-bundle package's) under /docs/assets."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount(f"/{ASSETS}", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
