"""Real `easel serve` processes sharing PostgreSQL, SQLite and Redis, driven by the CLI and the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.backing import Redis
from tests.helpers import Server, start_server

pytestmark = pytest.mark.slow


def easel(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "easel", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def create_key(database_url: str, *flags: str) -> dict[str, Any]:
    created: dict[str, Any] = json.loads(easel("keys", "create", "--json", "--database-url", database_url,
                                               *flags).stdout)  # fmt: skip
    return created


@contextmanager
def servers(tmp: Path, config: str, count: int = 1) -> Iterator[list[Server]]:
    folders = [tmp / f"s{i}" for i in range(count)]
    for folder in folders:
        folder.mkdir()
    started = [start_server(folder, config) for folder in folders]
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def generate(server: Server, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/images/generations", headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-image-1", "prompt": "a kite", "size": "256x256", **extra},
                      timeout=60)  # fmt: skip


def test_cli_key_lifecycle_and_revocation_seen_by_a_second_process(database_url: str, tmp_path: Path) -> None:
    key = create_key(database_url, "--name", "ci", "--models", "gpt-image-1,dall-e-2", "--rpm", "100")
    listed = json.loads(easel("keys", "list", "--json", "--database-url", database_url).stdout)
    assert [(k["id"], k["name"], k["models"], k["rpm"]) for k in listed] == [
        (key["id"], "ci", ["gpt-image-1", "dall-e-2"], 100)
    ]
    assert key["secret"] not in json.dumps(listed)
    table = easel("keys", "list", "--database-url", database_url).stdout
    assert key["id"][:8] in table
    with servers(tmp_path, f'database_url = "{database_url}"', count=2) as (a, b):
        assert generate(a, key["secret"]).status_code == 200
        assert generate(b, key["secret"]).status_code == 200
        easel("keys", "revoke", key["id"], "--database-url", database_url)
        for server in (a, b):  # the very next request, on either process
            refused = generate(server, key["secret"])
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_api_key"
        rotated = json.loads(easel("keys", "create", "--json", "--database-url", database_url).stdout)
        fresh = json.loads(
            easel("keys", "rotate", rotated["id"], "--json", "--database-url", database_url).stdout
        )
        assert generate(b, rotated["secret"]).status_code == 401
        assert generate(a, fresh["secret"]).status_code == 200
        usage = json.loads(
            easel("usage", "--json", "--group-by", "api_key_id", "--database-url", database_url).stdout
        )
        by_key = {r["api_key_id"]: r for bucket in usage["data"] for r in bucket["results"]}
        assert by_key[key["id"]]["images"] == 2
        assert by_key[key["id"]]["num_model_requests"] == 2
    command = [sys.executable, "-m", "easel", "keys", "revoke", "key_nope", "--database-url", database_url]
    revoke_unknown = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert revoke_unknown.returncode != 0
    assert "no key has the id 'key_nope'" in revoke_unknown.stderr


def test_budget_holds_under_fifty_concurrent_requests(database_url: str, tmp_path: Path) -> None:
    key = create_key(database_url, "--budget-images", "20", "--budget-period", "day")
    with servers(tmp_path, f'database_url = "{database_url}"', count=2) as (a, b):
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda i: generate((a, b)[i % 2], key["secret"]), range(50)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 20 + [429] * 30
        assert {r.json()["error"]["code"] for r in answers if r.status_code == 429} == {"insufficient_quota"}
    usage = json.loads(easel("usage", "--json", "--database-url", database_url).stdout)
    results = [r for bucket in usage["data"] for r in bucket["results"]]
    assert sum(r["images"] for r in results) == 20
    assert sum(r["refused_requests"] for r in results) == 30


def test_sdk_retries_obey_a_one_request_per_second_limit(
    postgres: Any, redis_server: Redis, tmp_path: Path
) -> None:
    database_url = postgres.database()
    key = create_key(database_url, "--rpm", "60")  # enforced as 1 per second
    config = (
        f'database_url = "{database_url}"\nrate_limit_storage = "{redis_server.url}"\n'
        'rate_limit_quantum = "second"\n'
    )
    with servers(tmp_path, config) as (server,):
        impatient = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["secret"], max_retries=0)
        patient = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["secret"], max_retries=2)
        impatient.images.generate(prompt="one", size="256x256")
        with pytest.raises(openai.RateLimitError) as refused:
            impatient.images.generate(prompt="two", size="256x256")
        assert refused.value.code == "rate_limit_exceeded"
        assert refused.value.response.headers["x-ratelimit-limit-requests"] == "1"
        assert 0 < int(refused.value.response.headers["retry-after-ms"]) <= 1005
        start = time.monotonic()
        for i in range(4):  # each waits for its slot as the headers say, then succeeds
            raw = patient.images.with_raw_response.generate(prompt=f"kite {i}", size="256x256")
            assert raw.http_response.status_code == 200
            assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        assert time.monotonic() - start < 8


def test_redis_shares_limits_between_processes(redis_server: Redis, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    key = create_key(database_url, "--rpm", "3")
    config = f'database_url = "{database_url}"\nrate_limit_storage = "{redis_server.url}"\n'
    with servers(tmp_path, config, count=2) as (a, b):
        assert [generate(s, key["secret"]).status_code for s in (a, b, a)] == [200, 200, 200]
        refused = generate(b, key["secret"])
        assert refused.status_code == 429
        assert "Limit 3, Used 3, Requested 1" in refused.json()["error"]["message"]


def test_a_spent_budget_is_not_retried_by_the_sdk(tmp_path: Path) -> None:
    """insufficient_quota carries no retry-after and says x-should-retry: false (CONTRACT §8), so the
    SDK gives up at once; a rate limit's 429 keeps its retry headers (the test above)."""
    database_url = f"sqlite:///{tmp_path / 'keys.db'}"
    key = create_key(database_url, "--budget-images", "1", "--budget-period", "total")
    with servers(tmp_path, f'database_url = "{database_url}"\n') as (server,):
        patient = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key["secret"], max_retries=2)
        patient.images.generate(prompt="one", size="1024x1024")
        with pytest.raises(openai.RateLimitError) as refused:
            patient.images.generate(prompt="two", size="1024x1024")
        assert refused.value.code == "insufficient_quota"
        headers = refused.value.response.headers
        assert headers["x-should-retry"] == "false"
        assert "retry-after" not in headers
        assert "retry-after-ms" not in headers
        scrape = httpx.get(f"{server.url}/metrics", timeout=30).text
        sent = [
            line
            for line in scrape.splitlines()
            if line.startswith("easel_requests_total") and 'status="429"' in line
        ]
        assert [float(line.rsplit(" ", 1)[1]) for line in sent] == [1.0], "one attempt: the SDK did not retry"


def test_the_key_table_says_how_long_a_budget_lasts(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'keys.db'}"
    create_key(database_url, "--budget-images", "2", "--budget-period", "total")
    create_key(database_url, "--budget-images", "5", "--budget-period", "day")
    table = easel("keys", "list", "--database-url", database_url).stdout
    assert "2 images in total" in table
    assert "5 images a day" in table
    assert "per total" not in table
