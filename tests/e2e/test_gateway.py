"""easel as a gateway: a real `easel serve` in front of a real strict `easel serve` upstream (with its
own key) and of a fault-injecting upstream, driven with the official SDK and raw HTTP."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.helpers import Server, decode, free_port, items, mask_png, noisy_png, start_server
from tests.upstream import PATIENCE, USAGE, Faults, fault_upstream

UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"
GATEWAY_KEY = "sk-gateway-test"
UPSTREAM = f"""
api_keys = ["{UPSTREAM_KEY}"]
[[models]]
id = "gpt-image-2.6-sunburst"
strict = true
aliases = ["gpt-image-1", "dall-e-2"]
"""


def gateway_config(upstream: Server, faults: Faults) -> str:
    relay = (f'backend = "openai"\n[models.options]\napi_key_env = "UPSTREAM_KEY"\n'
             f'base_url = "{upstream.url}/v1"\n')  # fmt: skip
    faulty = (f'backend = "openai"\nmirrors = "gpt-image-2.6-sunburst"\n[models.options]\n'
              f'api_key_env = "UPSTREAM_KEY"\nbase_url = "{faults.url}"\n')  # fmt: skip
    return f"""
api_keys = ["{GATEWAY_KEY}"]
[[models]]
id = "gpt-image-2.6-sunburst"
aliases = ["gpt-image-1"]
{relay}
[[models]]
id = "dall-e-2"
{relay}rehost_urls = true

[[models]]
id = "faulty"
{faulty}timeout_seconds = 3
max_retries = 2
max_retry_wait_seconds = 5
failure_threshold = 1000

[[models]]
id = "breaker"
{faulty}max_retries = 0
failure_threshold = 2
skip_seconds = 600

[[models]]
id = "passthrough"
{faulty}passthrough_unknown = true
model = "upstream-name"
organization = "org-gw"
project = "proj-gw"

[[models]]
id = "rehoster"
backend = "openai"
mirrors = "dall-e-2"
[models.options]
base_url = "{faults.url}"
send_key = false
rehost_urls = true

[[models]]
id = "single"
max_queue = 0
{faulty}max_in_flight = 1

[[models]]
id = "keyless"
backend = "openai"
[models.options]
base_url = "{faults.url}"
send_key = false

[[models]]
id = "nowhere"
backend = "openai"
[models.options]
base_url = "http://127.0.0.1:{free_port()}/v1"
api_key_env = "UPSTREAM_KEY"
max_retries = 1
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("upstream"), UPSTREAM)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faults() -> Iterator[Faults]:
    with fault_upstream() as fake:
        yield fake


def create_key(data: Path, *flags: str) -> str:
    done = subprocess.run([sys.executable, "-m", "easel", "keys", "create", "--json", "--data-dir", str(data),
                           *flags], capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    secret: str = json.loads(done.stdout)["secret"]
    return secret


@pytest.fixture(scope="module")
def budget_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("gateway") / "data"
    return data, create_key(data, "--budget-images", "2", "--budget-period", "total")


@pytest.fixture(scope="module")
def limited_key(budget_key: tuple[Path, str]) -> str:
    return create_key(budget_key[0], "--rpm", "1000")


@pytest.fixture(scope="module")
def gateway(
    upstream: Server, faults: Faults, budget_key: tuple[Path, str], limited_key: str
) -> Iterator[Server]:
    data, _ = budget_key
    server = start_server(data.parent, gateway_config(upstream, faults), env={"UPSTREAM_KEY": UPSTREAM_KEY},
                          data_dir=data)  # fmt: skip
    yield server
    server.stop()


def client(server: Server, key: str = GATEWAY_KEY, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=retries, timeout=PATIENCE)


def post(server: Server, path: str, body: dict[str, Any], key: str = GATEWAY_KEY) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/images/{path}", json=body, timeout=PATIENCE,
                      headers={"authorization": f"Bearer {key}"})  # fmt: skip


def test_every_endpoint_through_the_gateway_with_the_sdk(gateway: Server, upstream: Server) -> None:
    sdk = client(gateway)
    asked: dict[str, Any] = {"model": "gpt-image-2.6-sunburst", "prompt": "a red kite", "size": "1536x864",
                             "quality": "low"}  # fmt: skip
    raw = sdk.images.with_raw_response.generate(**asked)
    relayed = raw.parse()
    direct = client(upstream, UPSTREAM_KEY).images.generate(**asked)
    assert raw.headers["x-easel-served-by"] == "gpt-image-2.6-sunburst"
    assert raw.headers["x-upstream-request-id"].startswith("req_")
    assert raw.headers["x-upstream-request-id"] != raw.headers["x-request-id"]
    # The upstream's answer as it is: its fields, resolved size and quality, usage.
    assert relayed.model_dump(exclude={"created", "data"}) == direct.model_dump(exclude={"created", "data"})
    assert decode(base64.b64decode(items(relayed)[0].b64_json or "")).size == (1536, 864)

    # A multipart edit, re-posted with its file bytes unchanged: every unmasked pixel comes back.
    image = noisy_png((1024, 1024), seed=3)
    hole = (256, 256, 768, 768)
    mask = mask_png((1024, 1024), hole)
    edited = sdk.images.edit(model="gpt-image-1", image=("in.png", image, "image/png"), prompt="a hat",
                             mask=("m.png", mask, "image/png"), size="1024x1024")  # fmt: skip
    out = decode(base64.b64decode(items(edited)[0].b64_json or "")).convert("RGB")
    original = Image.open(io.BytesIO(image)).convert("RGB")
    assert out.crop((0, 0, 1024, 256)).tobytes() == original.crop((0, 0, 1024, 256)).tobytes()
    assert out.crop(hole).tobytes() != original.crop(hole).tobytes()

    # A JSON edit: the references are sent on as the client wrote them.
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    answer = post(
        gateway, "edits", {"model": "gpt-image-1", "prompt": "a hat", "images": [{"image_url": data_url}]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["input_tokens_details"]["image_tokens"] > 0

    # Variations on a dall-e upstream, its URL re-hosted on the gateway and signed there.
    square = ("in.png", noisy_png((256, 256)), "image/png")
    varied = sdk.images.create_variation(model="dall-e-2", image=square,
                                         size="256x256", response_format="url")  # fmt: skip
    url = items(varied)[0].url or ""
    assert url.startswith(f"{gateway.url}/files/")
    assert "sig=" in url
    fetched = httpx.get(url, timeout=PATIENCE)
    assert fetched.status_code == 200
    assert decode(fetched.content).size == (256, 256)
    tampered = httpx.get(url.replace("sig=", "sig=x"), timeout=PATIENCE)
    assert tampered.status_code == 403

    # gpt-image upstreams return only base64: a lenient gateway hosts it as a URL.
    hosted = sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="a kite", size="1024x1024",
                                 quality="low", response_format="url")  # fmt: skip
    assert items(hosted)[0].b64_json is None
    picture = httpx.get(items(hosted)[0].url or "", timeout=PATIENCE)
    assert picture.status_code == 200
    assert decode(picture.content).size == (1024, 1024)


def test_a_stream_is_relayed_as_it_comes(gateway: Server, upstream: Server, faults: Faults) -> None:
    sdk = client(gateway)
    streamed = sdk.images.generate(model="gpt-image-2.6-sunburst", prompt="a kite", stream=True,
                                   partial_images=2, size="1024x1024", quality="low")  # fmt: skip
    kinds = [e.type for e in streamed]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]

    faults.reset("held_stream")
    with sdk.images.generate(model="faulty", prompt="a kite", stream=True, partial_images=1) as stream:
        events = iter(stream)
        first = next(events)
        # The partial reached the client while the upstream still holds its last event.
        assert first.type == "image_generation.partial_image"
        assert faults.holding.is_set()
        assert not faults.sent_last.is_set()
        faults.release.set()
        rest = [e.type for e in events]
    assert rest == ["image_generation.completed"]


def test_a_stream_cut_mid_way_ends_with_an_error_event(gateway: Server, faults: Faults) -> None:
    faults.reset("dropped_stream")
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", timeout=PATIENCE,
                      headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                      json={"model": "faulty", "prompt": "x", "stream": True,
                            "partial_images": 1}) as response:  # fmt: skip
        assert response.status_code == 200
        text = response.read().decode()
    assert "event: image_generation.partial_image" in text
    error = json.loads(text.split("event: error\ndata: ")[1].split("\n")[0])
    assert error["error"]["code"] == "upstream_dropped"
    assert faults.url.split("//")[1].split("/")[0] in error["error"]["message"]


def test_errors_are_relayed_byte_for_byte(gateway: Server, upstream: Server) -> None:
    body = {
        "model": "gpt-image-2.6-sunburst",
        "prompt": "a kite",
        "size": "256x256",
    }  # lenient here, not there
    relayed = post(gateway, "generations", body)
    direct = post(upstream, "generations", body, UPSTREAM_KEY)
    assert relayed.status_code == direct.status_code == 400
    assert relayed.content == direct.content
    assert relayed.headers["x-upstream-request-id"].startswith("req_")


def test_retries_obey_the_upstream_and_stop_where_it_asks_too_long(gateway: Server, faults: Faults) -> None:
    faults.reset((429, {"retry-after-ms": "50"}), (500, {}), "ok")
    answer = post(gateway, "generations", {"model": "faulty", "prompt": "x"})
    assert answer.status_code == 200, answer.text
    assert len(faults.calls) == 3
    assert answer.json()["usage"] == USAGE
    assert answer.headers["x-ratelimit-remaining-requests"] == "41", "the upstream's limits reach the client"

    faults.reset((429, {"retry-after": "60", "x-ratelimit-remaining-requests": "0"}))
    refused = post(gateway, "generations", {"model": "faulty", "prompt": "x"})
    assert len(faults.calls) == 1, "a wait past max_retry_wait_seconds is the client's to make"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.json()["error"]["message"] == "fault 429"


def test_a_stalled_upstream_is_a_504_not_to_retry(gateway: Server, faults: Faults) -> None:
    faults.reset("stall")
    answer = post(gateway, "generations", {"model": "faulty", "prompt": "x"})
    faults.release.set()
    assert answer.status_code == 504
    assert answer.headers["x-should-retry"] == "false"
    assert answer.json()["error"]["code"] == "upstream_timeout"
    assert len(faults.calls) == 1, "work that may be billed is never retried"


def test_an_unreachable_upstream_is_a_502_naming_its_host(gateway: Server) -> None:
    answer = post(gateway, "generations", {"model": "nowhere", "prompt": "x"})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "127.0.0.1:" in error["message"]
    assert "retry-after" in answer.headers
    assert "could not be reached (ClientConnectorError). Retry 1 of 1 in" in gateway.log.read_text(), (
        "a refused connection reached nothing: it is retried (max_retries = 1)"
    )


def test_repeated_failures_skip_an_upstream_and_say_so(gateway: Server, faults: Faults) -> None:
    faults.reset((500, {}), (500, {}))
    for _ in range(2):
        assert post(gateway, "generations", {"model": "breaker", "prompt": "x"}).status_code == 500
    ready = httpx.get(f"{gateway.url}/ready", timeout=PATIENCE).json()
    assert ready["status"] == "degraded"
    assert ready["skipped"] == ["breaker"]
    listed = client(gateway).models.retrieve("breaker").model_dump()
    assert listed["upstream"]["available"] is False
    assert listed["upstream"]["skipped_for_seconds"] > 0


def test_the_gateways_keys_and_budget_apply_before_the_upstream(
    gateway: Server, faults: Faults, budget_key: tuple[Path, str]
) -> None:
    faults.reset()
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "sk-wrong").images.generate(model="faulty", prompt="x")
    blocked = post(gateway, "generations", {"model": "faulty", "prompt": "a nude figure"})
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "moderation_blocked"
    data, key = budget_key
    answered = [post(gateway, "generations", {"model": "faulty", "prompt": "x"}, key) for _ in range(2)]
    assert [a.status_code for a in answered] == [200, 200]
    ids = tuple(a.headers["x-request-id"] for a in answered)
    spent = post(gateway, "generations", {"model": "faulty", "prompt": "x"}, key)
    assert spent.status_code == 429
    assert spent.json()["error"]["code"] == "insufficient_quota"
    assert len(faults.calls) == 2, "neither a wrong key, a refused prompt nor a spent budget reaches it"
    # The usage rows record the upstream's real tokens and who answered.
    deadline = time.monotonic() + PATIENCE
    while True:
        with sqlite3.connect(data / "easel.db") as db:
            rows = db.execute("SELECT status, input_tokens, output_tokens, served_by FROM usage_records "
                              "WHERE request_id IN (?, ?)", ids).fetchall()  # fmt: skip
        if (len(rows) == 2 and all(row[0] for row in rows)) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows == [(200, USAGE["input_tokens"], USAGE["output_tokens"], "faulty")] * 2


def test_the_upstream_key_never_leaves_the_server(gateway: Server, faults: Faults) -> None:
    faults.reset((401, {}))
    answer = post(gateway, "generations", {"model": "faulty", "prompt": "x"})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_auth_failed"
    sent = faults.calls[0]["headers"]
    assert sent["authorization"] != f"Bearer {GATEWAY_KEY}", "the client's key is not sent upstream"
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=PATIENCE).text
    models = httpx.get(f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {GATEWAY_KEY}"}).text
    for where in (answer.text, metrics, models, gateway.log.read_text()):
        assert UPSTREAM_KEY not in where
        assert UPSTREAM_KEY[-8:] not in where
    assert 'easel_upstream_errors_total{model="faulty",status="502"}' in metrics
    assert 'easel_upstream_seconds_count{model="faulty"}' in metrics


def test_what_is_sent_upstream(gateway: Server, faults: Faults) -> None:
    faults.reset()
    novel = {"brand_new_field": {"depth": 3}, "another": "x"}
    answer = post(gateway, "generations", {"model": "passthrough", "prompt": "a kite", **novel})
    assert answer.status_code == 200, answer.text
    sent = faults.calls[0]
    body = json.loads(sent["body"])
    assert body == {"model": "upstream-name", "prompt": "a kite", **novel}, "unknown fields sent verbatim"
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["headers"]["openai-organization"] == "org-gw"
    assert sent["headers"]["openai-project"] == "proj-gw"
    assert sent["headers"]["x-client-request-id"] == answer.headers["x-request-id"]

    # Without passthrough an unknown field is easel's 400, and nothing is sent.
    refused = post(gateway, "generations", {"model": "faulty", "prompt": "a kite", **novel})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unknown_parameter"
    assert len(faults.calls) == 1

    # A multipart edit: re-posted with the model rewritten and every file's bytes unchanged.
    image, mask = noisy_png((64, 64), seed=5), mask_png((64, 64), (8, 8, 32, 32))
    edited = httpx.post(f"{gateway.url}/v1/images/edits", headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                        data={"model": "passthrough", "prompt": "a hat", "size": "1024x1024",
                              "output_format": "svg", "svg[model]": "gpt-5"},
                        files=[("image[]", ("a.png", image, "image/png")),
                               ("mask", ("m.png", mask, "image/png"))],
                        timeout=PATIENCE)  # fmt: skip
    assert edited.status_code == 200, edited.text
    posted = faults.calls[-1]
    assert posted["path"] == "/v1/images/edits"
    assert posted["headers"]["content-type"].startswith("multipart/form-data")
    assert image in posted["body"]
    assert mask in posted["body"]
    assert b'name="model"\r\n\r\nupstream-name\r\n' in posted["body"]
    assert b'name="image[]"; filename="a.png"' in posted["body"]
    assert b'name="svg[model]"\r\n\r\ngpt-5\r\n' in posted["body"], "nested fields as the SDKs send them"


def test_an_upstream_without_auth_gets_no_key(gateway: Server, faults: Faults) -> None:
    faults.reset()
    assert post(gateway, "generations", {"model": "keyless", "prompt": "a kite"}).status_code == 200
    assert "authorization" not in faults.calls[0]["headers"]


def test_easels_own_limits_are_the_ones_a_limited_caller_sees(
    gateway: Server, faults: Faults, limited_key: str
) -> None:
    faults.reset()
    answer = post(gateway, "generations", {"model": "faulty", "prompt": "x"}, limited_key)
    assert answer.status_code == 200
    assert answer.headers["x-ratelimit-limit-requests"] == "1000"
    assert answer.headers["x-ratelimit-remaining-requests"] != "41", "easel's limits, not the upstream's"


def test_a_rehosted_url_is_fetched_only_from_the_upstream_or_a_public_address(
    gateway: Server, faults: Faults
) -> None:
    faults.reset({"created": 1, "data": [{"url": "http://169.254.169.254/latest/meta-data"}]})
    answer = post(gateway, "generations", {"model": "rehoster", "prompt": "x", "response_format": "url"})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_url_failed"
    assert "not a public address" in error["message"]
    assert json.loads(faults.calls[0]["body"])["response_format"] == "url", "a dall-e upstream makes URLs"


def test_a_stream_holds_its_upstream_slot_until_it_ends(gateway: Server, faults: Faults) -> None:
    faults.reset("held_stream")
    with client(gateway).images.generate(
        model="single", prompt="a kite", stream=True, partial_images=1
    ) as stream:
        events = iter(stream)
        assert next(events).type == "image_generation.partial_image"
        busy = post(gateway, "generations", {"model": "single", "prompt": "x"})
        assert busy.status_code == 503, "one in flight, none may wait"
        assert busy.json()["error"]["code"] == "server_overloaded"
        faults.release.set()
        assert [e.type for e in events] == ["image_generation.completed"]
    assert post(gateway, "generations", {"model": "single", "prompt": "x"}).status_code == 200
