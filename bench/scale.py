"""The Ray Serve mode against single-process easel, side by side on this machine.

Run: `python -m bench.scale --out docs/bench`. It saves a tiny random SD pipeline, starts one
single-process `easel serve` and a local Ray cluster with `easel serve --ray` on it, both serving
the placeholder (`gpt-image-1`, 256x256 JPEG) and the tiny SD model (`sd`, 256x256, 2 steps).
Rounds alternate between the two servers at concurrency 1: the Ray mode's added p50 is the
median over the rounds of its p50 minus single-process easel's. A third route in the same rounds
is Ray Serve's own floor on the same cluster and port: its proxy, a bare FastAPI ingress and one
call to a model deployment that returns easel's answer as bytes (no easel in it). Then throughput at
concurrency 4, with the Ray mode's model on one replica (2 CPUs) and on two (1 CPU each: the
same two cores, so on this machine the second replica adds no compute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.backing import RAY_ENV, start_ray, start_ray_server
from tests.helpers import model_toml, start_server

from bench.common import drive, pct

PATH = "/v1/images/generations"
BODIES: dict[str, dict[str, Any]] = {
    "placeholder": {
        "model": "gpt-image-1",
        "prompt": "a paper boat",
        "size": "256x256",
        "output_format": "jpeg",
    },
    "tiny-sd": {"model": "sd", "prompt": "a paper boat", "size": "256x256", "steps": 2, "seed": 1},
}


def config(sd: Path, replicas: int, cpus: int) -> str:
    ray = f"\n[models.ray]\nreplicas = {replicas}\nnum_cpus = {cpus}\n"
    return (
        f'[[models]]\nid = "gpt-image-1"\nmax_batch_size = 1\n{ray}'
        + model_toml("sd", sd).replace('id = "sd"', 'id = "sd"\nmax_batch_size = 1')
        + ray
    )


@dataclass
class Latency:
    model: str
    single_p50_ms: float
    ray_p50_ms: float
    added_ms: float
    added_pct: float
    #: Ray Serve's own floor for the same answer: its proxy, a FastAPI ingress and one call to a
    #: model deployment that returns the bytes (no easel in it), over single-process easel.
    floor_added_ms: float


def serve_floor(address: str, answers: dict[str, bytes]) -> None:
    """Deploy the floor application at /floor on the cluster (beside easel's, at /): Serve's proxy,
    a plain HTTP deployment, and one call to a model deployment that returns the bytes."""
    import os

    os.environ.update(RAY_ENV)
    import ray
    from fastapi.responses import Response
    from ray import serve

    ray.init(address=address, logging_level="error", log_to_driver=False)

    @serve.deployment(max_ongoing_requests=100)
    class Model:
        async def answer(self, model: str) -> bytes:
            return answers[model]

    @serve.deployment(max_ongoing_requests=1000)
    class Ingress:
        def __init__(self, model: Any) -> None:
            self.model = model

        async def __call__(self, request: Any) -> Any:  # Serve's plain HTTP path: a Starlette request
            body = await request.json()
            return Response(await self.model.answer.remote(body["model"]), media_type="application/json")

    serve.run(Ingress.bind(Model.bind()), name="floor", route_prefix="/floor")


@dataclass
class Throughput:
    model: str
    single_rps: float
    ray_1_replica_rps: float
    ray_2_replicas_rps: float


async def p50_and_rps(
    url: str, model: str, concurrency: int, total: int, path: str = "/v1/images/generations"
) -> tuple[float, float]:
    load = await drive(url, concurrency, total, lambda _: BODIES[model], warm_up=concurrency, path=path)
    assert load.statuses == {200: total}, load.statuses
    return pct(load.latencies, 0.5) * 1000, load.ok / load.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="Folder for scale.json and scale.png.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--total", type=int, default=100, help="Requests per round (the tiny model: a quarter)."
    )
    args = parser.parse_args()
    from easel.backends.diffusion import tiny

    latency: list[Latency] = []
    rps: dict[str, dict[str, float]] = {m: {} for m in BODIES}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name in ("single", "ray1", "ray2"):
            (tmp / name).mkdir()
        sd = tiny.save("sd", tmp / "sd")
        single = start_server(tmp / "single", config(sd, 1, 2))  # ignores [models.ray]
        cluster = start_ray()
        try:
            ray1 = start_ray_server(tmp / "ray1", config(sd, 1, 2), cluster)
            answers = {b["model"]: httpx.post(f"{single.url}{PATH}", json=b, timeout=60).content
                       for b in BODIES.values()}  # fmt: skip
            serve_floor(cluster.address, answers)
            routes = {
                "single": (single.url, PATH),
                "ray": (ray1.url, PATH),
                "floor": (ray1.url, f"/floor{PATH}"),
            }
            try:
                for model in BODIES:
                    total = args.total if model == "placeholder" else args.total // 4
                    got: dict[str, list[float]] = {"single": [], "ray": [], "floor": []}
                    for _ in range(args.rounds):
                        for route, (url, path) in routes.items():
                            got[route].append(asyncio.run(p50_and_rps(url, model, 1, total, path))[0])
                    s, r = statistics.median(got["single"]), statistics.median(got["ray"])
                    added = statistics.median(b - a for a, b in zip(got["single"], got["ray"], strict=True))
                    under = statistics.median(b - a for a, b in zip(got["single"], got["floor"], strict=True))
                    latency.append(Latency(model, round(s, 2), round(r, 2), round(added, 2),
                                           round(100 * added / s, 1), round(under, 2)))  # fmt: skip
                    print(latency[-1], flush=True)
                    rps[model]["single"] = asyncio.run(p50_and_rps(single.url, model, 4, total * 2))[1]
                    rps[model]["ray1"] = asyncio.run(p50_and_rps(ray1.url, model, 4, total * 2))[1]
            finally:
                ray1.stop()
            ray2 = start_ray_server(tmp / "ray2", config(sd, 2, 1), cluster)
            try:
                for model in BODIES:
                    total = args.total if model == "placeholder" else args.total // 4
                    rps[model]["ray2"] = asyncio.run(p50_and_rps(ray2.url, model, 4, total * 2))[1]
            finally:
                ray2.stop()
        finally:
            import ray

            ray.shutdown()  # before the cluster goes: a driver whose cluster is gone is killed
            cluster.stop()
            single.stop()
    throughput = [
        Throughput(m, round(v["single"], 1), round(v["ray1"], 1), round(v["ray2"], 1)) for m, v in rps.items()
    ]
    print("| model | single-process p50 ms | Ray mode p50 ms | added p50 | | Ray Serve's floor, added |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in latency:
        added = f"**{row.added_ms} ms** | {row.added_pct} % | {row.floor_added_ms} ms"
        print(f"| {row.model} | {row.single_p50_ms} | {row.ray_p50_ms} | {added} |")
    print("| model (c=4) | single-process req/s | Ray, 1 replica req/s | Ray, 2 replicas req/s |")
    print("|---|---:|---:|---:|")
    for t in throughput:
        print(f"| {t.model} | {t.single_rps} | {t.ray_1_replica_rps} | {t.ray_2_replicas_rps} |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scale.json").write_text(
            json.dumps(
                {"latency": [asdict(r) for r in latency], "throughput": [asdict(t) for t in throughput]},
                indent=1,
            )
        )
        plot(latency, throughput, args.out / "scale.png")


def plot(latency: list[Latency], throughput: list[Throughput], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [row.model for row in latency]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], [r.single_p50_ms for r in latency], 0.4, label="single process")
    left.bar([x + 0.2 for x in xs], [r.ray_p50_ms for r in latency], 0.4, label="Ray mode")
    left.set_xticks(list(xs), names)
    left.set_ylabel("p50 ms at concurrency 1")
    left.legend()
    for i, (label, key) in enumerate(
        [
            ("single process", "single_rps"),
            ("Ray, 1 replica", "ray_1_replica_rps"),
            ("Ray, 2 replicas", "ray_2_replicas_rps"),
        ]
    ):
        right.bar([x + (i - 1) * 0.27 for x in xs], [getattr(t, key) for t in throughput], 0.27, label=label)
    right.set_xticks(list(xs), names)
    right.set_ylabel("requests/s at concurrency 4")
    right.legend()
    fig.suptitle("easel on Ray Serve against single-process easel (2 cores, no GPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
