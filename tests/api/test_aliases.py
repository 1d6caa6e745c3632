"""Aliases: one loaded model (one backend, one queue) answers several ids, each with its own rules."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from easel.app import create_app
from easel.settings import ModelSpec, Settings
from tests.fakes import STUCK, GatedBackend

ALIASES = ["gpt-image-2", "gpt-image-2.6-flare", "dall-e-3"]


def waiting(client: TestClient, model: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "easel_queue_depth" and sample.labels.get("model") == model:
                return float(sample.value)
    return 0.0


def test_aliases_share_one_queue_and_keep_their_own_rules(tmp_path: Path) -> None:
    spec = ModelSpec(id="local-flux", aliases=ALIASES, max_queue=1)
    backend = GatedBackend(spec, concurrency=1)  # one run at a time, as a GPU model
    settings = Settings(data_dir=tmp_path / "data", models=[spec])
    with (
        TestClient(create_app(settings, backends={"local-flux": backend})) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        assert list(listed) == ["local-flux", *ALIASES]
        assert {m["served_by"] for m in listed.values()} == {"local-flux"}
        assert [listed[a]["mirrors"] for a in ALIASES] == ALIASES, "each alias follows the model it names"
        assert listed["local-flux"]["mirrors"] == "gpt-image-2.6-sunburst", "an unknown id: the newest live"

        # Each id's own rules, before any work: dall-e-3 takes one image; gpt-image-2 free sizes.
        assert (
            client.post(
                "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x", "n": 2}
            ).status_code
            == 400
        )
        first = pool.submit(client.post, "/v1/images/generations",
                            json={"model": "gpt-image-2", "prompt": "x", "size": "1536x864"})  # fmt: skip
        try:
            assert backend.waiting.wait(STUCK), "the first request reached the model"
            second = pool.submit(
                client.post, "/v1/images/generations", json={"model": "dall-e-3", "prompt": "y"}
            )
            deadline = time.monotonic() + STUCK
            while waiting(client, "local-flux") < 1:  # the second waits in the same queue
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.01)
            third = client.post(
                "/v1/images/generations", json={"model": "gpt-image-2.6-flare", "prompt": "z"}
            )
            assert third.status_code == 503, "one queue: full for every alias"
            assert third.json()["error"]["code"] == "server_overloaded"
        finally:
            backend.open_gate()
        one, two = first.result(STUCK), second.result(STUCK)
    assert one.status_code == 200
    assert one.json()["size"] == "1536x864"
    assert two.status_code == 200
    assert "size" not in two.json(), "dall-e-3 answers as dall-e-3 did"
    assert two.json()["data"][0]["url"]


def test_an_operator_sets_the_shutdown_date_of_its_ids(tmp_path: Path) -> None:
    spec = ModelSpec(id="old-sd", aliases=["dall-e-2"], shutdown_date="2027-01-31")
    settings = Settings(data_dir=tmp_path / "data", models=[spec, ModelSpec(id="gpt-image-1")])
    with TestClient(create_app(settings)) as client:
        listed = {m["id"]: m["shutdown_date"] for m in client.get("/v1/models").json()["data"]}
    assert listed == {"old-sd": "2027-01-31", "dall-e-2": "2027-01-31", "gpt-image-1": "2026-10-23"}
