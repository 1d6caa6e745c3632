"""The Storage seam: another storage is one class; the service and the files route only use its API."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from easel import errors
from easel.app import create_app
from easel.services import build_services
from easel.settings import Settings
from easel.storage import Download, Storage, StoredImage


class MemoryStorage(Storage):
    """Images in a dict, each behind a random token: what an object store does, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, str]] = {}
        self.origins: list[str | None] = []

    async def put(self, data: bytes, fmt: str, origin: str | None = None) -> StoredImage:
        name, token = f"{secrets.token_hex(8)}.{fmt}", secrets.token_urlsafe(16)
        self.objects[name] = (data, f"image/{fmt}", token)
        self.origins.append(origin)
        base = origin or "http://memory.example"
        return StoredImage(url=f"{base}/files/images/{name}?sig={token}", expires_at=int(time.time()) + 60)

    async def open(self, name: str, signature: str) -> Download:
        if name not in self.objects:
            raise errors.NotFoundError("No such image.", code="not_found")
        data, media_type, token = self.objects[name]
        if not secrets.compare_digest(token, signature):
            raise errors.PermissionDeniedError("The URL signature is invalid.", code="invalid_signature")
        return Download(media_type=media_type, expires_at=int(time.time()) + 60, data=data)

    async def sweep(self) -> int:
        return 0


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[tuple[TestClient, MemoryStorage]]:
    storage = MemoryStorage()
    settings = Settings(data_dir=tmp_path / "data", trust_proxy=True)
    services = build_services(settings, storage=storage)
    assert services.storage is storage
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        yield client, storage


def test_hosted_urls_come_from_the_storage_and_are_served_by_it(
    memory: tuple[TestClient, MemoryStorage],
) -> None:
    client, storage = memory
    body = {"prompt": "a red boat", "size": "256x256", "response_format": "url", "n": 2}
    answer = client.post("/v1/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    urls = [item["url"] for item in answer.json()["data"]]
    assert len(storage.objects) == 2
    assert storage.origins == [None, None]  # no proxy said otherwise: the storage's own base
    for url in urls:
        assert url.startswith("http://memory.example/files/images/")
        parts = urlsplit(url)
        image = client.get(f"{parts.path}?{parts.query}")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
        assert image.headers["cache-control"].startswith("private, max-age=")
    tampered = client.get(urlsplit(urls[0]).path + "?sig=forged")
    assert tampered.status_code == 403
    assert tampered.json()["error"]["code"] == "invalid_signature"
    assert client.get("/files/images/nothing.png?sig=x").status_code == 404


def test_a_trusted_proxys_origin_is_handed_to_the_storage(memory: tuple[TestClient, MemoryStorage]) -> None:
    client, storage = memory
    headers = {"x-forwarded-host": "images.example.com", "x-forwarded-proto": "https"}
    body = {"prompt": "x", "size": "256x256", "response_format": "url"}
    answer = client.post("/v1/images/generations", json=body, headers=headers)
    assert answer.json()["data"][0]["url"].startswith("https://images.example.com/files/images/")
    assert storage.origins == ["https://images.example.com"]
