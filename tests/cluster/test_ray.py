"""`easel serve --ray` on a local Ray cluster, driven by the official SDK: every endpoint through the
ingress, a tiny diffusers model on two replicas, streams with partials, overload, a client that
leaves, and a replica killed while it holds requests."""

from __future__ import annotations

import base64
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import yaml

from tests.backends.diffusion.test_scheduling import STUCK, gauge, wait_until
from tests.backing import RayCluster, start_ray_server
from tests.helpers import Server, decode, items, mask_png, model_toml, png

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Several seconds of work per image here, by construction: what must happen while it runs is
#: waited for (its first partial, a gauge), never timed.
LONG: dict[str, Any] = {"size": "512x512", "n": 10, "steps": 50}
QUICK: dict[str, Any] = {"size": "256x256", "extra_body": {"steps": 2}}


def config(sd: Path) -> str:
    def model(name: str, settings: str, ray: str) -> str:
        toml = model_toml(name, sd).replace("max_steps = 12", "max_steps = 50")
        return toml.replace(f'id = "{name}"', f'id = "{name}"\n{settings}') + f"\n[models.ray]\n{ray}\n"

    return (
        'api_keys = ["sk-a"]\n'
        '[[models]]\nid = "gpt-image-2.6-sunburst"\naliases = ["gpt-image-1", "dall-e-2"]\n'
        + model("sd", "max_batch_size = 1", "replicas = 2\nnum_gpus = 1")
        + model("one", "max_queue = 1\nmax_batch_size = 1", "max_queued = 1")
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ray_cluster: RayCluster, pipelines: dict[str, Path]
) -> Iterator[Server]:
    s = start_ray_server(tmp_path_factory.mktemp("ray"), config(pipelines["sd"]), ray_cluster)
    yield s
    s.stop()


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-a", max_retries=0, timeout=STUCK)


def stream(server: Server, **body: Any) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """A streamed generation's (event, data) pairs, read as they come; closing it hangs up."""
    with httpx.stream("POST", f"{server.url}/v1/images/generations", json={"stream": True, **body},
                      headers={"authorization": "Bearer sk-a"}, timeout=STUCK) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield event, orjson.loads(line.removeprefix("data: "))


def test_every_endpoint_through_the_ingress(server: Server) -> None:
    sdk = client(server)
    raw = sdk.images.with_raw_response.generate(model="gpt-image-1", prompt="a kite", size="1024x1024")
    assert raw.headers.get_list("x-request-id") == [raw.headers["x-request-id"]]  # sent once, by Serve
    assert raw.headers["x-easel-served-by"] == "gpt-image-2.6-sunburst"
    assert decode(base64.b64decode(items(raw.parse())[0].b64_json or "")).size == (1024, 1024)

    hosted = sdk.images.generate(model="dall-e-2", prompt="a kite", size="256x256", response_format="url")
    url = items(hosted)[0].url or ""
    fetched = httpx.get(url, timeout=60)
    assert fetched.status_code == 200
    assert decode(fetched.content).size == (256, 256)

    mask = ("m.png", mask_png((256, 256), (0, 0, 128, 128)))
    edited = sdk.images.edit(model="gpt-image-1", prompt="a boat", image=("a.png", png((256, 256))),
                             mask=mask, size="256x256")  # fmt: skip
    assert decode(base64.b64decode(items(edited)[0].b64_json or "")).size == (256, 256)
    varied = sdk.images.with_raw_response.create_variation(image=("a.png", png((256, 256))), size="256x256")
    assert len(items(varied.parse())) == 1  # no model named: dall-e-2, as OpenAI documented

    events = [event for event, _ in stream(server, model="gpt-image-1", prompt="a kite", partial_images=2)]
    assert events == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]

    with pytest.raises(openai.BadRequestError) as bad:
        sdk.images.generate(model="sd", prompt="a kite", size="999x999")
    assert bad.value.code == "invalid_value"
    assert bad.value.param == "size"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0).models.list()


def test_a_tiny_diffusers_model_on_two_replicas(
    server: Server, ray_cluster: RayCluster, ray_driver: Any
) -> None:
    from ray import serve

    model = serve.status().applications["easel"].deployments["model-sd"]
    assert model.replica_states == {"RUNNING": 2}  # each holds one of the cluster's two (logical) GPUs
    sdk = client(server)

    def generate(seed: int, n: int = 1) -> list[str]:
        result = sdk.images.generate(model="sd", prompt="a lighthouse", n=n, size="256x256",
                                     extra_body={"seed": seed, "steps": 2})  # fmt: skip
        return [item.b64_json or "" for item in items(result)]

    with ThreadPoolExecutor(4) as pool:  # at once: Serve spreads them over both replicas
        same = list(pool.map(lambda _: generate(7)[0], range(4)))
    assert len(set(same)) == 1  # whichever replica drew it
    pair = generate(11, n=2)
    assert pair[0] != pair[1]
    assert pair[1] == generate(12)[0]
    assert all(count > 0 for count in ray_cluster.calls("model-sd").values())
    assert len(ray_cluster.calls("model-sd")) == 2

    edited = sdk.images.edit(model="sd", prompt="a boat", image=("a.png", png((256, 256))),
                             mask=("m.png", mask_png((256, 256), (0, 0, 128, 128))), **QUICK)  # fmt: skip
    assert len(items(edited)) == 1
    varied = sdk.images.create_variation(model="sd", image=("a.png", png((256, 256))), size="256x256")
    assert len(items(varied)) == 1
    events = [
        e for e, _ in stream(server, model="sd", prompt="a kite", partial_images=2, size="256x256", steps=6)
    ]
    assert events[0] == "image_generation.partial_image"
    assert events[-1] == "image_generation.completed"


def test_overload_is_a_503_envelope_with_retry_headers(server: Server) -> None:
    # "one": one replica, one run at a time, one request waiting in its queue, one in Ray's.
    long = stream(server, model="one", prompt="long", partial_images=1, **LONG)
    assert next(long)[0] == "image_generation.partial_image"  # it runs
    sdk = client(server)

    def generate(prompt: str) -> httpx.Response:
        body = {"model": "one", "prompt": prompt, "size": "256x256", "steps": 2}
        return httpx.post(f"{server.url}/v1/images/generations", headers={"authorization": "Bearer sk-a"},
                          json=body, timeout=STUCK)  # fmt: skip

    with ThreadPoolExecutor(3) as pool:
        sent = [pool.submit(generate, f"held {i}") for i in range(3)]
        # Past what the replica and Ray's queue hold, whichever refuses (easel's count in the
        # ingress, the replica's queue, Ray's backpressure): easel's envelope.
        wait_until(server, lambda: any(f.done() for f in sent), "a refusal")
        refused = next(f.result() for f in sent if f.done())
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "server_overloaded"
        assert error["type"] == "server_error"
        assert error["message"].startswith("The server is overloaded")
        assert int(refused.headers["retry-after"]) >= 1
        assert "retry-after-ms" in refused.headers
        long.close()  # hangs up: its run stops, and the held ones get their turn
        assert all(f.result().status_code in (200, 503) for f in sent)
        assert any(f.result().status_code == 200 for f in sent)
    assert len(items(sdk.images.generate(model="one", prompt="after", **QUICK))) == 1


def test_a_client_that_leaves_stops_the_replicas_run(server: Server, ray_cluster: RayCluster) -> None:
    stopped = ray_cluster.logged().count("model one: nobody waits")
    long = stream(server, model="one", prompt="long", partial_images=3, **LONG)
    assert next(long)[0] == "image_generation.partial_image"
    long.close()
    wait_until(server, lambda: ray_cluster.logged().count("model one: nobody waits") > stopped, "the stop")
    wait_until(server, lambda: gauge(server, "easel_at_replicas", "one") == 0, "the call to end")
    assert len(items(client(server).images.generate(model="one", prompt="next", **QUICK))) == 1


def test_a_replica_killed_while_it_holds_requests(server: Server, ray_driver: Any) -> None:
    from ray import serve

    long = stream(server, model="sd", prompt="long", partial_images=2, **LONG)
    assert next(long)[0] == "image_generation.partial_image"
    outcome: dict[str, Any] = {}

    def held() -> None:
        with pytest.raises(openai.APIStatusError) as caught:
            client(server).images.generate(
                model="sd", prompt="held", size="512x512", extra_body={"steps": 50}
            )
        outcome["error"] = caught.value

    waiting = threading.Thread(target=held)
    waiting.start()
    wait_until(server, lambda: gauge(server, "easel_at_replicas", "sd") >= 2, "both at the replicas")
    for actor in ray_driver.util.list_named_actors(all_namespaces=True):
        if actor["name"].startswith("SERVE_REPLICA::easel#model-sd#"):
            ray_driver.kill(
                ray_driver.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True
            )

    event, data = next(e for e in long if e[0] != "image_generation.partial_image")
    assert event == "error"
    assert data["error"]["type"] == "server_error"
    assert "stopped; another is starting" in data["error"]["message"]
    waiting.join()
    error = outcome["error"]
    assert error.status_code == 503
    assert error.body["code"] == "server_overloaded"
    assert "retry-after" in error.response.headers
    assert "Traceback" not in error.response.text
    assert "ray" not in error.response.text.lower()

    def replaced() -> bool:
        return serve.status().applications["easel"].deployments["model-sd"].replica_states == {"RUNNING": 2}

    wait_until(server, replaced, "Serve to replace both replicas")
    assert len(items(client(server).images.generate(model="sd", prompt="after", **QUICK))) == 1


def test_the_serve_config_of_easel_ray_config_deploys(
    server: Server, tmp_path: Path, ray_driver: Any
) -> None:
    """What `serve deploy` does with the printed YAML: its builder, given its args, under the
    YAML's application (here beside the running one, at another route prefix)."""
    from click.testing import CliRunner
    from ray import serve

    from easel.cli import cli
    from easel.cluster.application import build_app

    path = tmp_path / "easel.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[[models]]\nid = "gpt-image-1"\n')
    printed = CliRunner().invoke(cli, ["ray", "config", "--config", str(path)])
    (app,) = yaml.safe_load(printed.output)["applications"]
    module, name = app["import_path"].split(":")
    assert (module, name) == ("easel.cluster.application", "build_app")
    serve.run(build_app(app["args"]), name="from-yaml", route_prefix="/from-yaml")
    try:
        deployed = serve.status().applications["from-yaml"].deployments
        assert set(deployed) == {d["name"] for d in app["deployments"]}
        answer = httpx.post(f"{server.url}/from-yaml/v1/images/generations", timeout=STUCK,
                            json={"model": "gpt-image-1", "prompt": "a kite", "size": "256x256"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) == 1
    finally:
        serve.delete("from-yaml")
