"""The scheduler through real servers: fair queues, overload 503s the SDK retries, cancellation, time
limits and a draining SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from easel.governance.db import Database
from easel.governance.db.database import sqlite_url
from easel.governance.db.schema import UsageRecord
from easel.jobs import GenerateJob, Render
from easel.scheduler import FairQueue, Ticket
from tests.helpers import Server, decode, items, model_toml, start_server


def pixels(b64: str | None) -> np.ndarray:
    assert b64 is not None
    return np.asarray(decode(base64.b64decode(b64)).convert("RGB"), dtype=np.int16)


#: ~0.1 s per image with the tiny SD pipeline here; LONG is several seconds, and slow by
#: construction: what a test needs to happen while it runs is waited for, never timed.
QUICK: dict[str, Any] = {"size": "256x256", "extra_body": {"steps": 4}}
LONG: dict[str, Any] = {"size": "512x512", "n": 4, "extra_body": {"steps": 12}}
#: How long the tests wait for something before calling it stuck (a loaded machine is slow).
STUCK = 300


def client(server: Server, key: str = "sk-a", retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=retries, timeout=300)


def gauge(server: Server, name: str, model: str) -> float:
    """A per-model gauge from /metrics (`easel_queue_depth`, `easel_runs_in_progress`)."""
    scrape = httpx.get(f"{server.url}/metrics", timeout=60).text
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model") == model:
                return float(sample.value)
    return 0.0


def wait_until(server: Server, condition: Callable[[], bool], what: str) -> None:
    """Wait on the server's observable state (never a fixed sleep), failing fast if it died."""
    deadline = time.monotonic() + STUCK
    while not condition():
        assert server.process.poll() is None, f"the server exited while waiting for {what}"
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.02)


def running(server: Server, model: str, count: int = 1) -> Callable[[], bool]:
    return lambda: gauge(server, "easel_runs_in_progress", model) >= count


def queued(server: Server, model: str, count: int) -> Callable[[], bool]:
    return lambda: gauge(server, "easel_queue_depth", model) >= count


def logged(server: Server, pattern: str) -> Callable[[], bool]:
    return lambda: re.search(pattern, server.log.read_text()) is not None


def toml(folder: Path) -> str:
    def model(name: str, settings: str) -> str:
        toml = model_toml(name, folder).replace("max_steps = 12", "max_steps = 50")
        return toml.replace(f'id = "{name}"', f'id = "{name}"\n{settings}')

    return (
        'api_keys = ["sk-a", "sk-b"]\n'
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
        # The flood is queued before the other key arrives: one runs, nine wait (or fewer, once
        # some are done; the order below holds either way).
        wait_until(server, lambda: gauge(server, "easel_queue_depth", "fair") + len(done) >= 9, "the flood")
        other = [pool.submit(call, "sk-b") for _ in range(2)]
        for f in flood + other:
            f.result()
    # Round-robin: each of sk-b's requests waits behind at most one more of sk-a's.
    assert done.index("sk-b") <= 4
    assert len(done) - 1 - done[::-1].index("sk-b") <= 6, done


def test_overload_is_a_503_with_retry_headers_that_the_sdk_obeys(server: Server) -> None:
    def raw(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.url}/v1/images/generations", json={"model": "one", "prompt": "x", **body},
                          headers={"authorization": "Bearer sk-a"}, timeout=STUCK)  # fmt: skip

    long = {"size": "512x512", "n": 4, "steps": 12}
    with ThreadPoolExecutor(6) as pool:
        occupying = pool.submit(raw, long)
        wait_until(server, running(server, "one"), "the long run")
        waiting = pool.submit(raw, {"size": "256x256", "steps": 4})
        wait_until(server, queued(server, "one", 1), "the one queue slot taken")
        refused = raw({"size": "256x256", "steps": 4})  # one runs and one waits: refused
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "server_overloaded"
        assert error["type"] == "server_error"
        assert float(refused.headers["retry-after-ms"]) > 0
        assert int(refused.headers["retry-after"]) >= 1
        # Sent while the model is still full: refused, then retried as the headers say until it lands.
        before = refusals(server, "one")
        # Each retry waits what `retry-after-ms` says (at least 50 ms): so many retries outlast
        # the long run on any machine, so this waits for the room, never races it.
        patient = client(server, retries=10_000).images.generate(model="one", prompt="y", **QUICK)
        assert len(items(patient)) == 1, "the SDK's retries land when there is room"
        assert refusals(server, "one") > before, "its first attempt was refused, and retried"
        assert occupying.result().status_code == 200
        assert waiting.result().status_code == 200


def refusals(server: Server, model: str) -> float:
    scrape = httpx.get(f"{server.url}/metrics", timeout=60).text
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            if sample.name == "easel_refusals_total" and sample.labels == {
                "model": model,
                "reason": "overloaded",
            }:
                return float(sample.value)
    return 0.0


def test_a_client_that_leaves_frees_its_queue_slot_at_once(server: Server) -> None:
    runner = threading.Thread(
        target=lambda: client(server).images.generate(model="one", prompt="long", **{**LONG, "n": 2})
    )
    runner.start()
    wait_until(server, running(server, "one"), "the long run")
    with pytest.raises(httpx.TimeoutException):  # waits in the only slot, then hangs up
        httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "one", "prompt": "gone", "size": "256x256", "steps": 4},
            headers={"authorization": "Bearer sk-b"},
            timeout=0.5,
        )
    wait_until(server, logged(server, "request left the queue"), "the slot freed")
    # The slot is free again while the long one still runs: this one is queued, not refused.
    assert gauge(server, "easel_queue_depth", "one") == 0
    result = client(server, "sk-b").images.generate(model="one", prompt="next", **QUICK)
    assert len(items(result)) == 1
    runner.join()


def test_the_time_limit_is_a_clean_504_and_the_model_recovers(
    tmp_path: Path, pipelines: dict[str, Path]
) -> None:
    # Ten 512² images of 50 steps, one a run, are over a minute of work here: far past the limit,
    # which still leaves a quick render room on a loaded machine.
    server = start_server(tmp_path, "request_timeout_seconds = 20\n" + toml(pipelines["sd"]))
    try:
        _time_limit(server)
    finally:
        server.stop()


def _time_limit(server: Server) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client(server).images.generate(model="fair", prompt="too long", size="512x512", n=10,
                                       extra_body={"steps": 50})  # fmt: skip
    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "timeout"
    assert "time limit of 20 seconds" in caught.value.body["message"]
    wait_until(
        server, logged(server, r"model fair: nobody waits .* stopped after step \d+ of 50"), "the stop"
    )
    assert client(server).images.generate(model="fair", prompt="after", **QUICK).data


def test_sigterm_finishes_running_work_and_refuses_the_rest(
    tmp_path: Path, pipelines: dict[str, Path]
) -> None:
    # A grace of minutes: the running render finishes within it however loaded the machine is
    # (past the grace is the next test's case).
    s = start_server(tmp_path, "shutdown_grace_seconds = 300\n" + toml(pipelines["sd"]))
    outcomes: dict[str, object] = {}

    def call(name: str, **kwargs: Any) -> None:
        try:
            outcomes[name] = client(s).images.generate(model="fair", prompt=name, **kwargs)
        except openai.APIStatusError as exc:
            outcomes[name] = exc

    busy = threading.Thread(target=call, args=("running",), kwargs={**LONG, "n": 2})
    busy.start()
    wait_until(s, running(s, "fair"), "the long run")
    waiting = threading.Thread(target=call, args=("waiting",), kwargs=QUICK)
    waiting.start()
    wait_until(s, queued(s, "fair", 1), "the second request queued")
    s.process.send_signal(signal.SIGTERM)
    busy.join(STUCK)
    waiting.join(STUCK)
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

    with ThreadPoolExecutor(5) as pool:
        # While a long run (another batch key) holds the model, four requests queue up; the next
        # run takes them together.
        occupying = pool.submit(lambda: sdk_client.images.generate(model="batch", prompt="hold", **LONG))
        wait_until(server, running(server, "batch"), "the long run")
        queued_up = [pool.submit(lambda seed: draw("batch", seed)[0], seed) for seed in range(100, 104)]
        wait_until(server, queued(server, "batch", 4), "four requests waiting")
        batched = [f.result() for f in queued_up]
        assert items(occupying.result())
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

    with ThreadPoolExecutor(4) as pool:
        occupying = pool.submit(lambda: client(server).images.generate(model="batch", prompt="hold", **LONG))
        wait_until(server, running(server, "batch"), "the long run")
        streams = [pool.submit(stream, seed) for seed in range(3)]
        wait_until(server, queued(server, "batch", 3), "three streams waiting")
        kinds = [f.result() for f in streams]
        assert items(occupying.result())
    assert kinds == [["image_generation.partial_image"] * 2 + ["image_generation.completed"]] * 3
    assert "batch of 3 image(s) from 3 request(s)" in server.log.read_text()


def test_a_render_whose_requester_left_stops_at_the_next_step(server: Server) -> None:
    """Four 512² images of 50 steps in one run (a minute of work here): the client leaves after a
    second, and the run ends at its next step instead of finishing them."""
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "batch", "prompt": "abandoned", "size": "512x512", "n": 4, "steps": 50},
            headers={"authorization": "Bearer sk-a"},
            timeout=1.0,
        )
    wait_until(
        server, logged(server, r"model batch: nobody waits .* stopped after step (\d+) of 50"), "the stop"
    )
    stopped = re.findall(
        r"model batch: nobody waits .* stopped after step (\d+) of 50", server.log.read_text()
    )
    assert int(stopped[-1]) < 50
    assert client(server).images.generate(model="batch", prompt="next", **QUICK).data


def test_a_stream_refused_for_overload_is_a_503_not_an_error_event(server: Server) -> None:
    headers = {"authorization": "Bearer sk-a"}
    busy = {"model": "one", "prompt": "busy", "size": "512x512", "steps": 12}
    with ThreadPoolExecutor(2) as pool:
        occupying = pool.submit(
            httpx.post, f"{server.url}/v1/images/generations", json=busy, headers=headers, timeout=STUCK
        )
        wait_until(server, running(server, "one"), "the busy run")
        waiting = pool.submit(
            httpx.post, f"{server.url}/v1/images/generations", json=busy, headers=headers, timeout=STUCK
        )
        wait_until(server, queued(server, "one", 1), "the one queue slot taken")
        refused = httpx.post(
            f"{server.url}/v1/images/generations",
            json={"model": "one", "prompt": "s", "size": "256x256", "stream": True, "partial_images": 1},
            headers=headers,
            timeout=STUCK,
        )
        assert occupying.result().status_code == 200
        assert waiting.result().status_code == 200
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"]["code"] == "server_overloaded"


def test_sigterm_past_the_grace_answers_503_and_closes_the_usage_rows(
    tmp_path: Path, pipelines: dict[str, Path]
) -> None:
    """A render that outlives shutdown_grace_seconds: its request gets OpenAI's envelope (a stream
    its error event), its usage row is closed, and the log says so without a traceback."""
    s = start_server(tmp_path, "shutdown_grace_seconds = 2\n" + toml(pipelines["sd"]))
    outcomes: dict[str, Any] = {}
    slow: dict[str, Any] = {"size": "512x512", "n": 2, "extra_body": {"steps": 50}}  # a minute of work here

    def plain() -> None:
        try:
            client(s).images.generate(model="fair", prompt="plain", **slow)
        except openai.APIStatusError as exc:
            outcomes["plain"] = exc

    def streamed() -> None:
        try:
            outcomes["events"] = list(
                client(s).images.generate(model="one", prompt="streamed", stream=True, **slow)
            )
        except openai.APIError as exc:
            outcomes["stream"] = exc

    threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
    for thread in threads:
        thread.start()
    wait_until(s, running(s, "fair"), "the plain render")
    wait_until(s, running(s, "one"), "the streamed render")
    s.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(STUCK)
    assert s.process.wait(STUCK) in (0, -signal.SIGTERM)
    refused = outcomes["plain"]
    assert refused.status_code == 503
    assert refused.body["code"] == "server_overloaded"
    assert "did not finish within the 2 s it allows running work" in refused.body["message"]
    assert int(refused.response.headers["retry-after"]) >= 1
    assert "shutting down" in str(outcomes["stream"])
    log = s.log.read_text()
    assert "2 running request(s) past the 2 s grace answered 503" in log
    assert "Traceback" not in log
    assert "Internal Server Error" not in log
    db = Database(sqlite_url(tmp_path / "data"))
    try:
        with db.session() as session:
            statuses = sorted(session.scalars(select(UsageRecord.status)).all())
    finally:
        db.close()
    assert statuses == [503, 503], "both usage rows were closed"
