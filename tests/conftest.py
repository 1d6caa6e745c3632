"""Shared fixtures: servers started as real subprocesses, SDK clients, in-process apps."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from easel.app import create_app
from easel.settings import Settings
from tests.backing import S3, S3_ENV, Postgres, Redis, start_postgres, start_redis, start_s3
from tests.helpers import Server, start_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STRICT_CONFIG = """
[[models]]
id = "gpt-image-1"
strict = true

[[models]]
id = "dall-e-2"
strict = true

[[models]]
id = "dall-e-3"
strict = true
"""


#: Every OpenAI id from one strict placeholder instance: each follows its own documented rules.
TODAY_STRICT_CONFIG = """
[[models]]
id = "gpt-image-2.6-sunburst"
strict = true
aliases = [
  "gpt-image-2.6-flare", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare", "gpt-image-2",
  "gpt-image-1.5", "gpt-image-1-mini", "gpt-image-1", "dall-e-3", "dall-e-2",
]
"""


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """One moto S3 server (a real S3 API over HTTP) for the session, with a bucket."""
    store = start_s3()
    yield store
    store.stop()


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> a saved tiny random pipeline folder, loadable through `from_pretrained`."""
    from easel.backends.diffusion import tiny

    root = tmp_path_factory.mktemp("pipelines")
    return {family: tiny.save(family, root / family) for family in tiny.FAMILIES}


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One throwaway PostgreSQL server for the session (each test takes a database of its own)."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """One throwaway Redis server for the session."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def hosting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The settings of each storage whose URLs point back at easel: local files, and an S3 bucket
    read through easel (`s3_presign = false`), each under its own key prefix."""
    if request.param == "local":
        return {}
    s3: S3 = request.getfixturevalue("s3")
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    return {"storage": "s3", "s3_bucket": s3.bucket, "s3_endpoint_url": s3.url, "s3_region": "us-east-1",
            "s3_presign": False, "s3_prefix": f"{request.node.name}/"}  # fmt: skip


@pytest.fixture(scope="session")
def today_strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("today-strict"), TODAY_STRICT_CONFIG)
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["lenient", "today_strict"])
def today_server(request: pytest.FixtureRequest) -> Server:
    """Today's models in both modes: the default (lenient) server and a strict one."""
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(scope="session")
def lenient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("lenient"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("strict"), STRICT_CONFIG)
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["lenient", "strict"])
def any_server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server


def sdk(server: Server, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture
def client(lenient_server: Server) -> openai.OpenAI:
    return sdk(lenient_server)


@pytest.fixture
def strict_client(strict_server: Server) -> openai.OpenAI:
    return sdk(strict_server)


@pytest.fixture
def any_client(any_server: Server) -> openai.OpenAI:
    return sdk(any_server)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c
