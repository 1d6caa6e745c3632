"""Two ingress replicas on Ray Serve sharing PostgreSQL, Redis and S3: a key revoked through one is
refused through the other, a rate limit counts across both, a URL from one is fetched through the
other; and the Ray mode refuses to start them on state that only one process keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from easel.api.context import REPLICA_HEADER as REPLICA
from tests.backing import RAY_ENV, S3, S3_ENV, Postgres, RayCluster, Redis, start_ray_server

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ADMIN = {"authorization": "Bearer sk-admin"}
#: Requests sent to find both replicas before giving up (Serve picks one of the two each time).
TRIES = 200


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
    ray_cluster: RayCluster,
    postgres: Postgres,
    redis_server: Redis,
    s3: S3,
) -> Iterator[str]:
    config = f"""
admin_keys = ["sk-admin"]
database_url = "{postgres.database()}"
rate_limit_storage = "{redis_server.url}"
storage = "s3"
s3_bucket = "{s3.bucket}"
s3_endpoint_url = "{s3.url}"
s3_region = "us-east-1"
s3_presign = false
s3_prefix = "ray/"

[ray]
ingress_replicas = 2

[[models]]
id = "gpt-image-2.6-sunburst"
aliases = ["gpt-image-1"]
"""
    # The AWS variables are this process's; `easel serve --ray` passes them on to its replicas.
    server = start_ray_server(tmp_path_factory.mktemp("shared"), config, ray_cluster, env=S3_ENV)
    yield server.url
    server.stop()


def until_both(send: Callable[[], httpx.Response], expect: int) -> set[str]:
    """Send until both ingress replicas have answered; every answer must have status `expect`."""
    seen: set[str] = set()
    with ThreadPoolExecutor(2) as pool:  # two at a time: Serve sends each to the less busy one
        for _ in range(TRIES // 2):
            for response in pool.map(lambda _: send(), range(2)):
                assert response.status_code == expect, response.text
                seen.add(response.headers[REPLICA])
            if len(seen) == 2:
                return seen
    raise AssertionError(f"only {seen} answered in {TRIES} requests")


def new_key(url: str, **spec: object) -> dict[str, str]:
    created = httpx.post(f"{url}/admin/keys", json={"name": "ray", **spec}, headers=ADMIN, timeout=60)
    assert created.status_code == 200, created.text
    body: dict[str, str] = created.json()
    return body


def test_a_key_revoked_through_one_replica_is_refused_through_the_other(shared: str) -> None:
    key = new_key(shared)
    headers = {"authorization": f"Bearer {key['secret']}"}
    until_both(lambda: httpx.get(f"{shared}/v1/models", headers=headers, timeout=60), 200)
    revoked = httpx.post(f"{shared}/admin/keys/{key['id']}/revoke", headers=ADMIN, timeout=60)
    assert revoked.status_code == 200, revoked.text
    until_both(lambda: httpx.get(f"{shared}/v1/models", headers=headers, timeout=60), 401)


def test_a_rate_limit_counts_across_both_replicas(shared: str) -> None:
    rpm = 20
    key = new_key(shared, rpm=rpm)
    headers = {"authorization": f"Bearer {key['secret']}"}

    def generate() -> httpx.Response:
        return httpx.post(f"{shared}/v1/images/generations", headers=headers, timeout=60,
                          json={"model": "gpt-image-1", "prompt": "a kite", "size": "256x256"})  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: generate(), range(rpm)))
    assert [a.status_code for a in answers] == [200] * rpm
    assert len({a.headers[REPLICA] for a in answers}) == 2  # both counted toward the one limit
    refused = generate()
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_a_url_returned_by_one_replica_is_fetched_through_either(shared: str, s3: S3) -> None:
    key = new_key(shared)
    made = httpx.post(f"{shared}/v1/images/generations", headers={"authorization": f"Bearer {key['secret']}"},
                      json={"model": "gpt-image-1", "prompt": "a kite", "size": "256x256",
                            "response_format": "url"}, timeout=60)  # fmt: skip
    assert made.status_code == 200, made.text
    url = made.json()["data"][0]["url"]
    assert url.startswith(shared)  # easel-signed: read from the bucket by whichever replica
    assert any(name.startswith("ray/") for name in s3.listed())
    first = httpx.get(url, timeout=60)
    until_both(lambda: httpx.get(url, timeout=60), 200)
    assert httpx.get(url, timeout=60).content == first.content


def test_several_ingress_replicas_on_local_state_are_refused(tmp_path: Path, ray_cluster: RayCluster) -> None:
    (tmp_path / "easel.toml").write_text("[ray]\ningress_replicas = 2\n")
    command = [sys.executable, "-m", "easel", "serve", "--ray", "--ray-address", ray_cluster.address,
               "--port", str(ray_cluster.serve_port), "--config", str(tmp_path / "easel.toml"),
               "--data-dir", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **RAY_ENV})
    assert done.returncode == 1
    said = done.stderr
    assert "the Ray mode with 2 ingress replicas needs state they all share" in said
    assert 'storage = "s3"' in said
    assert "redis://" in said
    assert "postgresql+psycopg://" in said
    assert "Traceback" not in said
