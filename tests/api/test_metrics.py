"""GET /metrics: Prometheus text that prometheus-client's own parser reads, with counters that move."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from easel.app import create_app
from easel.settings import ModelSpec, Settings


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_stages_images_and_refusals(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        models=[ModelSpec(id="gpt-image-1"), ModelSpec(id="full", max_queue=0)],
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for _ in range(2):
            assert (
                client.post(
                    "/v1/images/generations", json={"prompt": "a", "size": "256x256", "n": 2}
                ).status_code
                == 200
            )
        url = {"prompt": "b", "size": "256x256", "response_format": "url"}
        assert client.post("/v1/images/generations", json=url).status_code == 200
        assert client.post("/v1/images/generations", json={"prompt": "c", "size": "7x7"}).status_code == 400
        assert client.post("/v1/images/generations", json={"model": "full", "prompt": "d"}).status_code == 503
        found = samples(client)

    ok = {"model": "gpt-image-1", "operation": "generations"}
    assert value(found, "easel_requests_total", **ok, status="200") == 3
    assert value(found, "easel_requests_total", **ok, status="400") == 1
    assert value(found, "easel_requests_total", model="full", operation="generations", status="503") == 1
    assert value(found, "easel_images_generated_total", **ok) == 5
    assert value(found, "easel_refusals_total", model="full", reason="overloaded") == 1
    for stage, count in (("queue", 3), ("generate", 3), ("encode", 5), ("store", 1)):
        assert value(found, "easel_stage_seconds_count", model="gpt-image-1", stage=stage) == count, stage
    assert value(found, "easel_batch_images_count", model="gpt-image-1") == 3
    assert value(found, "easel_batch_images_sum", model="gpt-image-1") == 5
    assert ("easel_queue_depth", (("model", "full"),)) in found
