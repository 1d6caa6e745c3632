"""/docs is Swagger UI served from easel's own files: nothing from another origin, offline."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from easel.app import create_app
from easel.settings import Settings


def test_the_api_docs_load_only_from_easel(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as http:
        page = http.get("/docs")
        assert page.status_code == 200
        assert re.findall(r"https?://", page.text) == []  # no CDN, no external favicon
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert {"docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css"} <= set(assets)
        for asset in assets:
            fetched = http.get(f"/{asset}")
            assert fetched.status_code == 200, asset
        assert "javascript" in http.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"]
        assert 'url: "openapi.json"' in page.text
        assert "validatorUrl: null" in page.text
        schema = http.get("/openapi.json").json()
        assert "/v1/images/generations" in schema["paths"]
        assert "/docs" not in schema["paths"]
