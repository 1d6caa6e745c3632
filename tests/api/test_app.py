"""In-process API behaviour: headers, error envelopes, 500s, stream errors, bodies, JSON edits."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from easel.app import create_app
from easel.jobs import EditJob
from easel.settings import Settings
from tests.fakes import RecordingBackend
from tests.helpers import CLASSIC_MODELS, mask_png, noisy_png, png

HEADERS = ("x-request-id", "openai-processing-ms", "openai-version")


def make(tmp_path: Path, backend: RecordingBackend | None = None, **settings: object) -> TestClient:
    settings.setdefault("models", CLASSIC_MODELS)
    app = create_app(
        Settings(data_dir=tmp_path / "data", **settings),  # type: ignore[arg-type]
        backends={"gpt-image-1": backend} if backend else None,
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def recorder() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def fake(tmp_path: Path, recorder: RecordingBackend) -> Iterator[TestClient]:
    with make(tmp_path, recorder) as client:
        yield client


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/v1/images/generations", 200),
        ("get", "/v1/models", 200),
        ("get", "/health", 200),
        ("get", "/v1/nowhere", 404),
        ("get", "/v1/images/generations", 405),
    ],
)
def test_openai_headers_on_every_response(
    app_client: TestClient, method: str, path: str, status: int
) -> None:
    response = app_client.request(method, path, json={"prompt": "x", "size": "256x256"})
    assert response.status_code == status
    assert all(h in response.headers for h in HEADERS)
    assert response.headers["openai-version"] == "2020-10-01"
    if status >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_request_ids_are_unique(app_client: TestClient) -> None:
    ids = {app_client.get("/health").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_backend_crash_is_a_500_envelope_naming_the_request(tmp_path: Path) -> None:
    with make(tmp_path, RecordingBackend(fail=RuntimeError("secret detail"))) as client:
        response = client.post("/v1/images/generations", json={"prompt": "x"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert response.headers["x-request-id"] in error["message"]
    assert "secret detail" not in error["message"]  # the cause goes to the log only


def test_failure_after_stream_started_is_an_error_event(tmp_path: Path) -> None:
    with make(tmp_path, RecordingBackend(fail_after_preview=True)) as client:
        response = client.post(
            "/v1/images/generations", json={"prompt": "x", "stream": True, "partial_images": 1}
        )
    assert response.status_code == 200
    text = response.text
    assert "event: image_generation.partial_image" in text
    assert "event: error" in text
    assert '"code":"image_generation_failed"' in text
    assert '"type":"image_generation_server_error"' in text


def test_stream_wire_format(fake: TestClient) -> None:
    response = fake.post(
        "/v1/images/generations", json={"prompt": "x", "stream": True, "partial_images": 1, "size": "256x256"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.strip() and not b.startswith(":")]
    assert [b.splitlines()[0] for b in blocks] == [
        "event: image_generation.partial_image",
        "event: image_generation.completed",
    ]
    assert all(b.splitlines()[1].startswith("data: {") for b in blocks)


@pytest.mark.parametrize(
    ("kwargs", "message_part"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            "could not parse the JSON body",
        ),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, "JSON object"),
        (
            {"content": b"prompt=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            "expected application/json",
        ),
        ({"content": b"", "headers": {}}, "Invalid Content-Type header (none)"),
    ],
)
def test_malformed_bodies(app_client: TestClient, kwargs: dict[str, object], message_part: str) -> None:
    response = app_client.post("/v1/images/generations", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert message_part in response.json()["error"]["message"]


def test_broken_json_says_what_to_fix_without_sending_anyone_elsewhere(app_client: TestClient) -> None:
    message = app_client.post(
        "/v1/images/generations", content=b"{oops", headers={"content-type": "application/json"}
    ).json()["error"]["message"]
    assert "help.openai.com" not in message
    assert "Content-Type: application/json" in message


def test_broken_multipart_is_a_400(app_client: TestClient) -> None:
    response = app_client.post(
        "/v1/images/edits",
        content=b"--xyz\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 400


def test_text_where_a_file_belongs(app_client: TestClient) -> None:
    response = app_client.post(
        "/v1/images/edits",
        data={"image": "abc", "prompt": "x"},
        files={"mask": ("m.png", png((8, 8), "RGBA"), "image/png")},
    )
    assert response.json()["error"]["code"] == "invalid_type"


def test_json_edit_with_data_urls(fake: TestClient, recorder: RecordingBackend) -> None:
    image, mask = noisy_png((64, 64)), mask_png((64, 64), (0, 0, 32, 32))
    response = fake.post(
        "/v1/images/edits",
        json={
            "prompt": "x",
            "images": [{"image_url": data_url(image)}, {"image_url": data_url(png())}],
            "mask": {"image_url": data_url(mask)},
            "size": "256x256",
            "moderation": "low",
        },
    )
    assert response.status_code == 200, response.text
    job = recorder.jobs[-1]
    assert isinstance(job, EditJob)
    assert job.operation == "edits"
    assert len(job.images) == 2
    assert job.mask is not None


@pytest.mark.parametrize(
    ("images", "code", "param"),
    [
        ("nope", "invalid_type", "images"),
        ([], "empty_array", "images"),
        ([{"file_id": "file-123"}], "invalid_value", "images[0].file_id"),
        ([{"image_url": "data:image/png;base64,@@@"}], "invalid_image", "images[0]"),
        ([{"image_url": "ftp://example.com/a.png"}], "invalid_image_url", "images[0].image_url"),
        ([{"image_url": "https://example.com/a.png"}], "invalid_image_url", "images[0].image_url"),
        ([{"image_url": data_url(b"")}], "invalid_image", "images[0]"),
    ],
)
def test_json_edit_bad_references(app_client: TestClient, images: object, code: str, param: str) -> None:
    response = app_client.post("/v1/images/edits", json={"prompt": "x", "images": images})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.png",
        "http://10.0.0.8/a.png",
        "http://[::1]/a.png",
        "http://169.254.169.254/latest",
    ],
)
def test_remote_fetch_never_reaches_private_addresses(tmp_path: Path, url: str) -> None:
    with make(tmp_path, allow_remote_images=True) as client:
        response = client.post("/v1/images/edits", json={"prompt": "x", "images": [{"image_url": url}]})
    assert response.status_code == 400
    assert "not a public address" in response.json()["error"]["message"]


def test_json_edits_are_gpt_image_only(app_client: TestClient) -> None:
    response = app_client.post(
        "/v1/images/edits",
        json={"model": "dall-e-2", "prompt": "x", "images": [{"image_url": data_url(png())}]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_jobs_carry_resolved_values(fake: TestClient, recorder: RecordingBackend) -> None:
    fake.post(
        "/v1/images/generations",
        json={"prompt": "x", "seed": 5, "steps": 3, "guidance_scale": 2.5, "negative_prompt": "blur"},
    )
    render = recorder.jobs[-1].render
    assert (render.size, render.quality, render.background) == ("1024x1024", "medium", "opaque")
    assert (render.seed, render.steps, render.guidance_scale, render.negative_prompt) == (5, 3, 2.5, "blur")


def test_capabilities_limit_choices(fake: TestClient) -> None:
    # The fake backend has no alpha: `transparent` is refused, naming the parameter.
    response = fake.post("/v1/images/generations", json={"prompt": "x", "background": "transparent"})
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "background")
    models = fake.get("/v1/models").json()["data"]
    assert models[0]["transparent_background"] is False
    assert models[1]["transparent_background"] is True


def test_edit_auto_size_follows_the_input(fake: TestClient, recorder: RecordingBackend) -> None:
    fake.post(
        "/v1/images/edits",
        data={"prompt": "x"},
        files={"image": ("a.png", noisy_png((300, 200)), "image/png")},
    )
    assert recorder.jobs[-1].render.size == "1536x1024"


def hosted_url(client: TestClient, headers: dict[str, str] | None = None) -> str:
    body = {"prompt": "x", "model": "dall-e-2", "size": "256x256"}
    url: str = client.post("/v1/images/generations", headers=headers, json=body).json()["data"][0]["url"]
    return url


def test_public_base_url_and_trusted_proxy(tmp_path: Path, hosting: dict[str, Any]) -> None:
    with make(tmp_path, public_base_url="https://img.example.com/", **hosting) as client:
        assert hosted_url(client).startswith("https://img.example.com/files/images/")
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-host": "proxy.example.org"}
    with make(tmp_path, trust_proxy=True, **hosting) as client:
        assert hosted_url(client, forwarded).startswith("https://proxy.example.org/files/images/")
    with make(tmp_path, **hosting) as client:  # untrusted: forwarded headers are ignored
        assert hosted_url(client, forwarded).startswith("http://127.0.0.1:8000/files/images/")


def test_hosted_url_tampering_and_traversal(tmp_path: Path, hosting: dict[str, Any]) -> None:
    with make(tmp_path, **hosting) as client:
        url = hosted_url(client)
        path = url.removeprefix("http://127.0.0.1:8000")
        fetched = client.get(path)
        assert fetched.status_code == 200
        assert fetched.content.startswith(b"\x89PNG")
        assert fetched.headers["x-content-type-options"] == "nosniff"
        name, sig = path.rsplit("?sig=", 1)
        assert client.get(f"{name}?sig={sig[:-2]}AA").status_code == 403
        assert client.get(name).status_code == 403
        later = name.replace("/images/", "/images/9")  # a longer expiry: the signature no longer fits
        assert client.get(f"{later}?sig={sig}").status_code == 403
        assert client.get(f"/files/images/..%2Furl-signing.key?sig={sig}").status_code == 404
        assert client.get(f"/files/images/../url-signing.key?sig={sig}").status_code == 404


def test_repeated_image_parts_are_a_list(fake: TestClient, recorder: RecordingBackend) -> None:
    files = [
        ("image", ("a.png", png((32, 32)), "image/png")),
        ("image", ("b.png", png((32, 32)), "image/png")),
    ]
    response = fake.post("/v1/images/edits", data={"prompt": "x", "size": "256x256"}, files=files)
    assert response.status_code == 200, response.text
    assert len(recorder.jobs[-1].images) == 2  # type: ignore[union-attr]


def test_stream_without_partials_sends_only_the_completed_event(fake: TestClient) -> None:
    response = fake.post("/v1/images/generations", json={"prompt": "x", "stream": True, "size": "256x256"})
    events = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events == ["event: image_generation.completed"]


def test_cpu_workers_bound_concurrent_renders(tmp_path: Path) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    class Slow(RecordingBackend):
        def __init__(self) -> None:
            super().__init__()
            self.active = self.peak = 0
            self.lock = threading.Lock()

        def run(self, job, on_preview=None, stop=None):  # type: ignore[no-untyped-def]
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            time.sleep(0.15)
            with self.lock:
                self.active -= 1
            return super().run(job, on_preview)

    for workers, expected in ((1, 1), (3, 3)):
        slow = Slow()
        with make(tmp_path, slow, cpu_workers=workers) as client, ThreadPoolExecutor(6) as pool:
            sent = [
                pool.submit(client.post, "/v1/images/generations", json={"prompt": "x", "size": "256x256"})
                for _ in range(6)
            ]
            assert all(f.result().status_code == 200 for f in sent)
        assert slow.peak == expected
