"""easel's diffusers backend end to end against the same pipeline called directly (the ceiling).

Run: `python -m bench.raw_pipeline --out docs/bench`. It saves a tiny random SD pipeline, loads it
in this process and in an `easel serve` subprocess with the same dtype, steps and size, then
alternates rounds: the raw pipeline called in a Python loop (PIL images out, nothing encoded),
and sequential requests through the official wire format (PNG, base64, HTTP) at concurrency 1.
It also times streaming: the first partial image against the completed one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.helpers import start_server

from easel.backends.diffusion import tiny

PROMPT = "a lighthouse on a cliff at dusk"


@dataclass
class Case:
    size: int
    steps: int


@dataclass
class Result:
    size: int
    steps: int
    raw_images_per_s: float
    easel_images_per_s: float
    ratio: float
    raw_p50_ms: float
    easel_p50_ms: float
    first_partial_ms: float
    completed_ms: float


def config(folder: Path, cases: list[Case], dtype: str) -> str:
    sizes = ", ".join(f'"{c.size}x{c.size}"' for c in cases)
    return f"""log_level = "warning"

[[models]]
id = "sd"
backend = "diffusers"
sizes = [{sizes}]

[models.options]
path = "{folder}"
dtype = "{dtype}"
guidance_scale = 0.0
"""


def raw_round(pipe: Any, case: Case, count: int) -> list[float]:
    import torch

    times = []
    for i in range(count):
        start = time.perf_counter()
        pipe(
            PROMPT,
            num_inference_steps=case.steps,
            height=case.size,
            width=case.size,
            guidance_scale=0.0,
            generator=[torch.Generator("cpu").manual_seed(i)],
            output_type="pil",
        )
        times.append(time.perf_counter() - start)
    return times


async def easel_round(url: str, case: Case, count: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession(url) as client:
        for i in range(count):
            size = f"{case.size}x{case.size}"
            body = {"model": "sd", "prompt": PROMPT, "size": size, "steps": case.steps, "seed": i}
            start = time.perf_counter()
            async with client.post("/v1/images/generations", json=body) as response:
                response.raise_for_status()
                await response.read()
            times.append(time.perf_counter() - start)
    return times


async def stream_once(url: str, case: Case) -> tuple[float, float]:
    """ms to the first partial image and to the completed image of a 3-partial stream."""
    body = {
        "model": "sd",
        "prompt": PROMPT,
        "size": f"{case.size}x{case.size}",
        "steps": case.steps,
        "stream": True,
        "partial_images": 3,
    }
    first = completed = 0.0
    async with aiohttp.ClientSession(url) as client:
        start = time.perf_counter()
        async with client.post("/v1/images/generations", json=body) as response:
            seen = b""
            async for chunk in response.content.iter_any():
                seen = seen[-64:] + chunk  # an event name may straddle two chunks
                if not first and b"event: image_generation.partial_image" in seen:
                    first = time.perf_counter() - start
                if b"event: image_generation.completed" in seen:
                    completed = time.perf_counter() - start
    return first * 1000, completed * 1000


def measure(pipe: Any, url: str, case: Case, rounds: int, count: int) -> Result:
    raw: list[float] = []
    served: list[float] = []
    raw_round(pipe, case, 2)  # warm both
    asyncio.run(easel_round(url, case, 2))
    raw_rates, easel_rates = [], []
    for _ in range(rounds):  # alternate, so both see the same state of this shared machine
        r = raw_round(pipe, case, count)
        e = asyncio.run(easel_round(url, case, count))
        raw += r
        served += e
        raw_rates.append(count / sum(r))
        easel_rates.append(count / sum(e))
    streams = [asyncio.run(stream_once(url, case)) for _ in range(5)]
    raw_rate, easel_rate = statistics.median(raw_rates), statistics.median(easel_rates)
    return Result(
        case.size,
        case.steps,
        raw_rate,
        easel_rate,
        easel_rate / raw_rate,
        statistics.median(raw) * 1000,
        statistics.median(served) * 1000,
        statistics.median(s[0] for s in streams),
        statistics.median(s[1] for s in streams),
    )


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.size}px, {r.steps} steps" for r in results]
    xs = range(len(results))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([x - 0.2 for x in xs], [r.raw_images_per_s for r in results], 0.4, label="raw pipeline (ceiling)")
    ax.bar([x + 0.2 for x in xs], [r.easel_images_per_s for r in results], 0.4, label="easel, end to end")
    for x, r in zip(xs, results, strict=True):
        ax.annotate(f"{r.ratio:.2f}x", (x + 0.2, r.easel_images_per_s), ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    ax.set(ylabel="images/s (concurrency 1)", title="tiny SD pipeline on CPU: easel vs the raw pipeline")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20, help="images per round")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch
    from diffusers import DiffusionPipeline

    cases = [Case(256, 4), Case(512, 8)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny.save("sd", Path(tmp) / "sd")
        pipe = DiffusionPipeline.from_pretrained(str(folder), dtype=getattr(torch, args.dtype))
        pipe.set_progress_bar_config(disable=True)
        server = start_server(Path(tmp), config(folder, cases, args.dtype))
        try:
            for case in cases:
                results.append(measure(pipe, server.url, case, args.rounds, args.count))
        finally:
            server.stop()
    print(
        "| size | steps | raw images/s | easel images/s | easel / raw | raw p50 | easel p50 "
        "| first partial | completed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.size}² | {r.steps} | {r.raw_images_per_s:.2f} | {r.easel_images_per_s:.2f} | "
            f"**{r.ratio:.3f}** | {r.raw_p50_ms:.0f} ms | {r.easel_p50_ms:.0f} ms | "
            f"{r.first_partial_ms:.0f} ms | {r.completed_ms:.0f} ms |"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "raw_pipeline.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
        plot(results, args.out / "raw_pipeline.png")


if __name__ == "__main__":
    main()
