"""Hostile input found under attack (issue 14): each is a clean 4xx or a quiet 499, never a 5xx."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from easel import errors
from easel.app import create_app
from easel.contract.references import RemotePolicy, collect
from easel.settings import Settings
from tests.helpers import CLASSIC_MODELS, png

ADMIN = {"authorization": "Bearer sk-admin"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", admin_keys=["sk-admin"], allow_remote_images=True,
                        models=CLASSIC_MODELS)  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def series(client: TestClient, name: str) -> list[dict[str, str]]:
    return [
        s.labels
        for f in text_string_to_metric_families(client.get("/metrics").text)
        for s in f.samples
        if s.name == name
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://127.0.0.1:abc/",
        "http://example.com:99999/a.png",
        "http://h:1:2/x",
        "https://[zz]/",
    ],
)
def test_a_malformed_image_url_is_a_400(client: TestClient, url: str) -> None:
    answer = client.post("/v1/images/edits", json={"prompt": "x", "images": [{"image_url": url}]})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "images[0].image_url"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"rpm": 2**70}, "rpm"),
        ({"ipm": 2**63}, "ipm"),
        ({"budget_images": 2**64}, "budget_images"),
        ({"budget_megapixels": 1e300}, "budget_megapixels"),
    ],
)
def test_admin_integers_beyond_their_columns_are_400s(
    client: TestClient, body: dict[str, int], param: str
) -> None:
    answer = client.post("/admin/keys", json=body, headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "query", [{"start_time": 2**70}, {"start_time": 0, "end_time": 2**64}, {"start_time": 0, "limit": 2**63},
              {"page": "9" * 40}],
)  # fmt: skip
def test_usage_query_integers_beyond_range_are_400s(client: TestClient, query: dict[str, object]) -> None:
    answer = client.get("/v1/organization/usage/images", params=query, headers=ADMIN)  # type: ignore[arg-type]
    assert answer.status_code == 400, answer.text


def test_wrong_methods_and_unknown_paths_add_no_metric_series(client: TestClient) -> None:
    assert client.get("/v1/images/generations").status_code == 405
    for i in range(50):
        assert client.post(f"/v1/images/made-up-{i}", json={}).status_code == 404
    client.post("/v1/images/generations", json={"prompt": "x", "size": "256x256"})
    operations = {labels["operation"] for labels in series(client, "easel_requests_total")}
    assert operations == {"generations"}, "only the three operations are labels, and a GET is none"


def test_log_lines_cannot_be_forged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from easel.logs import TextFormatter

    with caplog.at_level(logging.INFO, logger="easel.access"):
        client.get("/v1/images/x%0a2026-12-01 INFO easel.access: forged")
    lines = [TextFormatter().format(r) for r in caplog.records if r.name == "easel.access"]
    assert lines
    assert all("\n" not in line for line in lines)
    assert "\\x0a2026-12-01" in lines[-1]


def test_decoded_pixels_are_bounded_per_request(tmp_path: Path) -> None:
    """Eight flat 6000² PNGs are a small upload but 288 megapixels decoded: refused up front."""
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), (9, 9, 9)).save(buf, "PNG")
    flat = buf.getvalue()
    assert len(flat) < 1_000_000
    settings = Settings(data_dir=tmp_path / "data", models=CLASSIC_MODELS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        files = [("image[]", (f"{i}.png", flat, "image/png")) for i in range(8)]
        answer = c.post("/v1/images/edits", data={"prompt": "x", "size": "256x256"}, files=files)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "image_too_large"
    assert "288000000 pixels in all" in error["message"]
    assert "the limit is 100000000 pixels a request" in error["message"]


def test_a_full_queue_refuses_before_anything_is_charged(tmp_path: Path) -> None:
    """Overload is shed before the gate: no database work, but the refusal's usage row."""
    settings = Settings(data_dir=tmp_path / "data", models=[{"id": "gpt-image-1", "max_queue": 0}])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        services = c.app.state.services  # type: ignore[attr-defined]
        charges: list[object] = []
        real = services.gate.ledger.charge

        def counted(*args: object, **kwargs: object) -> object:
            charges.append(args)
            return real(*args, **kwargs)

        services.gate.ledger.charge = counted
        answer = c.post("/v1/images/generations", json={"prompt": "x", "size": "256x256"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "server_overloaded"
    assert charges == [], "the gate never charged the refused request"


def test_a_rebound_name_is_fetched_from_the_address_that_was_checked() -> None:
    """DNS rebinding, simulated: the name resolves to a public address when checked, to loopback
    after. The connection goes to the checked address, with the Host header and TLS name kept."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    seen: list[httpx.Request] = []

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=png((8, 8)), headers={"content-type": "image/png"})

    policy = RemotePolicy(enabled=True, timeout=10, max_bytes=10**6, resolver=resolver,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    files = asyncio.run(collect({"images": [{"image_url": "https://images.example.com/cat.png"}]}, policy))
    assert files["image"][0].data.startswith(b"\x89PNG")
    (request,) = seen
    assert (request.url.host, request.url.path) == ("93.184.216.34", "/cat.png")
    assert request.headers["host"] == "images.example.com"
    assert request.extensions["sni_hostname"] == "images.example.com"


def test_a_redirect_to_a_private_address_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"] if host == "public.example.com" else ["10.0.0.7"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://internal.example.com/secret"})

    policy = RemotePolicy(enabled=True, timeout=10, max_bytes=10**6, resolver=resolver,
                          transport=httpx.MockTransport(handler))  # fmt: skip
    with pytest.raises(errors.BadRequestError, match="not a public address"):
        asyncio.run(collect({"images": [{"image_url": "http://public.example.com/a.png"}]}, policy))


def test_data_urls_still_work(client: TestClient) -> None:
    data = "data:image/png;base64," + base64.b64encode(png((64, 64))).decode()
    answer = client.post(
        "/v1/images/edits", json={"prompt": "x", "images": [{"image_url": data}], "size": "256x256"}
    )
    assert answer.status_code == 200, answer.text


def buffered_app(tmp_path: Path) -> TestClient:
    """A server whose budget fits one request at its limits (1 MiB body, a megapixel), no more."""
    settings = Settings(data_dir=tmp_path / "data", models=CLASSIC_MODELS, max_body_bytes=1024 * 1024,
                        max_request_pixels=1_000_000, max_buffered_bytes=6_000_000)  # fmt: skip
    return TestClient(create_app(settings), raise_server_exceptions=False)


def buffered(c: TestClient) -> float:
    return next(
        s.value
        for f in text_string_to_metric_families(c.get("/metrics").text)
        for s in f.samples
        if s.name == "easel_buffered_bytes"
    )


def test_bodies_and_decoded_pixels_are_bounded_across_requests(tmp_path: Path) -> None:
    """What other requests hold counts: a request that would pass the budget is a retryable 503
    before it reads or decodes more, and every answer, plain or streamed, gives its bytes back."""
    image = png((256, 256))
    fields = {"prompt": "x", "size": "256x256"}
    files = {"image": ("a.png", image, "image/png")}
    with buffered_app(tmp_path) as c:
        memory = c.app.state.services.memory  # type: ignore[attr-defined]
        others = memory.hold()  # what requests in progress elsewhere hold
        others.take(memory.limit - 200_000)  # room for this body, not for its 65536 pixels decoded
        assert buffered(c) == memory.limit - 200_000
        refused = c.post("/v1/images/edits", data=fields, files=files)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        error = refused.json()["error"]
        assert error["code"] == "server_overloaded"
        assert "max_buffered_bytes" in error["message"]
        assert "this request needs 262144 more" in error["message"], "4 bytes a decoded pixel"
        assert memory.used == others.held, "the refused request gave its body's bytes back"
        url = "data:image/png;base64," + base64.b64encode(image).decode()
        as_json = c.post("/v1/images/edits", json={"prompt": "x", "images": [{"image_url": url}]})
        assert as_json.status_code == 503, "a JSON edit's images count as they decode too"
        assert memory.used == others.held

        others.take(200_000 - 1000)  # now not even the body fits: refused before it is read
        refused = c.post("/v1/images/edits", data=fields, files=files)
        assert refused.status_code == 503
        assert (
            f"needs {int(refused.request.headers['content-length'])} more"
            in refused.json()["error"]["message"]
        )

        others.release()
        assert c.post("/v1/images/edits", data=fields, files=files).status_code == 200
        streamed = {**fields, "stream": "true"}
        with c.stream("POST", "/v1/images/edits", data=streamed, files=files) as stream:
            assert "image_edit.completed" in "".join(stream.iter_text())
        assert memory.used == 0
        assert buffered(c) == 0


def test_the_budget_must_fit_one_request_at_the_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_buffered_bytes 2000000 cannot hold one request at the limits"):
        Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, max_request_pixels=1_000_000,
                 max_buffered_bytes=2_000_000)  # fmt: skip
