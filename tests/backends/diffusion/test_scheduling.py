"""The scheduler through real servers: fair queues, overload 503s the SDK retries, cancellation, time
limits and a draining SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from easel.jobs import GenerateJob, Render
from easel.scheduler import FairQueue, Ticket
from tests.helpers import Server, decode, items, start_server

from .conftest import model_toml


def pixels(b64: str | None) -> np.ndarray:
    assert b64 is not None
    return np.asarray(decode(base64.b64decode(b64)).convert("RGB"), dtype=np.int16)


#: ~0.1 s per image with the tiny SD pipeline here; LONG is several seconds.
QUICK: dict[str, Any] = {"size": "256x256", "extra_body": {"steps": 4}}
LONG: dict[str, Any] = {"size": "512x512", "n": 4, "extra_body": {"steps": 12}}


def client(server: Server, key: str = "sk-a", retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=retries, timeout=120)


def toml(folder: Path) -> str:
    def model(name: str, settings: str) -> str:
        return model_toml(name, folder).replace(f'id = "{name}"', f'id = "{name}"\n{settings}')

    return (
        'api_keys = ["sk-a", "sk-b"]\nrequest_timeout_seconds = 6\n'
        + model("fair", "max_batch_size = 1")
        + model("one", "max_queue = 1\nmax_batch_size = 1")
        + model("batch", "max_batch_size = 4\nbatch_window_ms = 400")
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pipelines: dict[str, Path]) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("scheduling"), toml(pipelines["sd"]))
    yield s
    s.stop()


def _ticket(owner: str, n: int = 1, key: object = "k") -> Ticket:
    render = Render("m", n, 256, 256, "low", "opaque", seed=0)
    return Ticket(
        job=GenerateJob(render=render, prompt=owner), owner=owner, encode=lambda _: b"", deadline=0, key=key
    )


def test_fair_queue_serves_owners_round_robin_within_its_depth() -> None:
    async def order() -> tuple[list[str], bool, int]:
        queue = FairQueue(depth=5)
        tickets = [_ticket(o) for o in "aaab"]
        for t in tickets:
            assert queue.put(t)
        queue.put(_ticket("c"))
        full = queue.put(_ticket("d"))
        assert queue.remove(tickets[1])
        popped = []
        while (next_one := queue.pop()) is not None:
            popped.append(next_one.owner)
        return popped, full, len(queue)

    popped, full, left = asyncio.run(order())
    assert popped == ["a", "b", "c", "a"]
    assert not full
    assert left == 0


def test_batches_gather_compatible_images_across_owners_and_split_large_requests() -> None:
    async def take() -> list[list[tuple[str, int, int]]]:
        queue = FairQueue(depth=10)
        for t in [
            _ticket("a", 3),
            _ticket("a", 1),
            _ticket("b", 1, key="other"),
            _ticket("c", 2),
            _ticket("d", 1, None),
        ]:
            queue.put(t)
        batches = []
        while batch := queue.take(4):
            batches.append([(s.ticket.owner, s.start, s.count) for s in batch])
        return batches

    assert asyncio.run(take()) == [
        [("a", 0, 3), ("c", 0, 1)],  # a's 3, then c (b's key differs): 4 images
        [("b", 0, 1)],
        [("d", 0, 1)],  # no key: alone
        [("a", 0, 1), ("c", 1, 1)],  # a's second request, then c's rest
    ]


def test_one_key_flooding_does_not_starve_another(server: Server) -> None:
    done: list[str] = []
    lock = threading.Lock()

    def call(key: str) -> None:
        client(server, key).images.generate(model="fair", prompt=key, **QUICK)
        with lock:
            done.append(key)

    with ThreadPoolExecutor(12) as pool:
        flood = [pool.submit(call, "sk-a") for _ in range(10)]
        time.sleep(0.3)  # the flood is queued before the other key arrives
        other = [pool.submit(call, "sk-b") for _ in range(2)]
        for f in flood + other:
            f.result()
    # Round-robin: each of sk-b's requests waits behind at most one more of sk-a's.
    assert done.index("sk-b") <= 4
    assert len(done) - 1 - done[::-1].index("sk-b") <= 6, done


def test_overload_is_a_503_with_retry_headers_that_the_sdk_obeys(server: Server) -> None:
    def raw(_: int) -> httpx.Response:
        body = {"model": "one", "prompt": "x", "size": "256x256", "steps": 4}
        return httpx.post(
            f"{server.url}/v1/images/generations",
            json=body,
            headers={"authorization": "Bearer sk-a"},
            timeout=60,
        )

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(raw, range(6)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "one runs and one waits: the rest are refused"
    error = refused[0].json()["error"]
    assert error["code"] == "server_overloaded"
    assert error["type"] == "server_error"
    assert float(refused[0].headers["retry-after-ms"]) > 0
    assert int(refused[0].headers["retry-after"]) >= 1

    patient = client(server, retries=8)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: patient.images.generate(model="one", prompt="y", **QUICK), range(4))
        )
    assert all(len(items(r)) == 1 for r in results), "the SDK's retries land when there is room"


def test_a_client_that_leaves_frees_its_queue_slot_at_once(server: Server) -> None:
    runner = threading.Thread(
        target=lambda: client(server).images.generate(model="one", prompt="long", **{**LONG, "n": 2})
    )
    runner.start()
    time.sleep(0.5)
    with pytest.raises(httpx.TimeoutException):  # waits in the only slot, then hangs up
        httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "one", "prompt": "gone", "size": "256x256", "steps": 4},
            headers={"authorization": "Bearer sk-b"},
            timeout=0.5,
        )
    time.sleep(0.3)
    # The slot is free again while the long one still runs: this one is queued, not refused.
    result = client(server, "sk-b").images.generate(model="one", prompt="next", **QUICK)
    assert len(result.data) == 1
    runner.join()
    assert "request left the queue" in server.log.read_text()


def test_the_time_limit_is_a_clean_504_and_the_model_recovers(server: Server) -> None:
    start = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        client(server).images.generate(model="fair", prompt="too long", **{**LONG, "n": 10})
    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "timeout"
    assert time.monotonic() - start < 9, "the render stopped at its next step"
    assert client(server).images.generate(model="fair", prompt="after", **QUICK).data


def test_sigterm_finishes_running_work_and_refuses_the_rest(
    tmp_path: Path, pipelines: dict[str, Path]
) -> None:
    s = start_server(tmp_path, toml(pipelines["sd"]).replace("request_timeout_seconds = 6", ""))
    outcomes: dict[str, object] = {}

    def call(name: str, **kwargs: Any) -> None:
        try:
            outcomes[name] = client(s).images.generate(model="fair", prompt=name, **kwargs)
        except openai.APIStatusError as exc:
            outcomes[name] = exc

    running = threading.Thread(target=call, args=("running",), kwargs={**LONG, "n": 2})
    running.start()
    time.sleep(1.0)
    waiting = threading.Thread(target=call, args=("waiting",), kwargs=QUICK)
    waiting.start()
    time.sleep(0.5)
    s.process.send_signal(signal.SIGTERM)
    running.join(60)
    waiting.join(60)
    # uvicorn re-raises the signal once it has shut down cleanly, so the status is SIGTERM's.
    assert s.process.wait(60) in (0, -signal.SIGTERM)
    assert "Finished server process" in s.log.read_text()
    assert not isinstance(outcomes["running"], Exception), outcomes["running"]
    refused = outcomes["waiting"]
    assert isinstance(refused, openai.InternalServerError)
    assert refused.status_code == 503
    assert "shutting down" in str(refused.body)
    leftovers = [p for p in (tmp_path / "data").rglob("*") if p.name.startswith(".tmp-")]
    assert not leftovers


def test_batched_requests_keep_their_seeds(server: Server) -> None:
    """Four requests in one pipeline run, and a six-image one split 4 + 2, draw what they draw alone."""
    sdk_client = client(server)

    def draw(model: str, seed: int, n: int = 1, prompt: str = "") -> list[np.ndarray]:
        result = sdk_client.images.generate(
            model=model,
            prompt=prompt or f"seed {seed}",
            n=n,
            size="256x256",
            extra_body={"seed": seed, "steps": 4},
        )
        return [pixels(item.b64_json) for item in items(result)]

    with ThreadPoolExecutor(4) as pool:
        batched = list(pool.map(lambda seed: draw("batch", seed)[0], range(100, 104)))
    log = server.log.read_text()
    assert "batch of 4 image(s) from 4 request(s)" in log
    for seed, image in zip(range(100, 104), batched, strict=True):
        alone = draw("fair", seed)[0]  # max_batch_size = 1: one image per run
        diff = np.abs(image - alone)
        # The same noise: pixels agree but for float rounding in batched kernels (fp32).
        assert diff.max() <= 1
        assert (diff > 0).mean() < 0.001

    six = draw("batch", 7, n=6, prompt="six")
    assert "batch of 2 image(s) from 1 request(s)" in server.log.read_text()
    for i, image in enumerate(six):
        diff = np.abs(image - draw("fair", 7 + i, prompt="six")[0])
        assert diff.max() <= 1


def test_streams_get_their_partials_from_batched_runs(server: Server) -> None:
    def stream(seed: int) -> list[str]:
        events = client(server).images.generate(
            model="batch",
            prompt="p",
            size="256x256",
            stream=True,
            partial_images=2,
            extra_body={"seed": seed},
        )
        return [e.type for e in events]

    with ThreadPoolExecutor(3) as pool:
        kinds = list(pool.map(stream, range(3)))
    assert kinds == [["image_generation.partial_image"] * 2 + ["image_generation.completed"]] * 3
    assert re.search(r"model batch: .* batch of [23] image\(s\) from [23] request", server.log.read_text())


def test_a_render_whose_requester_left_stops_at_the_next_step(server: Server) -> None:
    """Four 512² images in one run (seconds of work): the client leaves after one second, and
    the run ends at its next step instead of finishing them."""
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "batch", "prompt": "abandoned", "size": "512x512", "n": 4, "steps": 12},
            headers={"authorization": "Bearer sk-a"},
            timeout=1.0,
        )
    start = time.monotonic()
    assert client(server).images.generate(model="batch", prompt="next", **QUICK).data
    assert time.monotonic() - start < 2.0
    runs = re.findall(
        r"model batch: ran generations, batch of 4 image\(s\) from 1 request\(s\), in (\d+) ms",
        server.log.read_text(),
    )
    assert runs
    assert int(runs[-1]) < 2500, "a full run of these takes about 6 s"


def test_a_stream_refused_for_overload_is_a_503_not_an_error_event(server: Server) -> None:
    headers = {"authorization": "Bearer sk-a"}
    busy = {"model": "one", "prompt": "busy", "size": "512x512", "steps": 12}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(
            httpx.post, f"{server.url}/v1/images/generations", json=busy, headers=headers, timeout=60
        )
        time.sleep(0.3)
        waiting = pool.submit(
            httpx.post, f"{server.url}/v1/images/generations", json=busy, headers=headers, timeout=60
        )
        time.sleep(0.3)
        refused = httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "one", "prompt": "s", "size": "256x256", "stream": True, "partial_images": 1},
            headers=headers,
            timeout=60,
        )
        assert running.result().status_code == 200
        assert waiting.result().status_code == 200
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"]["code"] == "server_overloaded"
    assert "retry-after-ms" in refused.headers
