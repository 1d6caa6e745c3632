"""/playground is served by easel with a policy that allows this origin only; / redirects to it;
`playground = false` leaves both out. (tests/browser drives the page itself.)"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from easel.app import create_app
from easel.settings import Settings


def test_the_page_and_its_modules_are_served_from_this_origin(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as http:
        root = http.get("/", follow_redirects=False)
        assert (root.status_code, root.headers["location"]) == (307, "playground")
        page = http.get("/playground")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "connect-src 'self' blob:" in policy
        assert re.findall(r"https?://", page.text) == []  # no CDN, no fonts from elsewhere
        modules = [
            "main.js",
            "api.js",
            "code.js",
            "controls.js",
            "dom.js",
            "errors.js",
            "history.js",
            "painter.js",
        ]
        for name in ["style.css", *modules]:
            asset = http.get(f"/playground/assets/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["cache-control"] == "no-cache", name  # an upgrade is seen at once
            assert re.findall(r"""(?:import|from)\s*["'](https?:)?//""", asset.text) == [], name
        main = http.get("/playground/assets/main.js").text
        assert set(re.findall(r'from "\./([a-z]+\.js)"', main)) == set(modules) - {"main.js"}
        assert "javascript" in http.get("/playground/assets/main.js").headers["content-type"]
        assert "/playground" not in http.get("/openapi.json").json()["paths"]


def test_the_playground_can_be_turned_off(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, playground=False))) as http:
        for path in ["/", "/playground", "/playground/assets/main.js"]:
            answer = http.get(path, follow_redirects=False)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["message"]  # OpenAI's envelope, as for any unknown path
        assert http.get("/docs").status_code == 200  # the API docs stay
