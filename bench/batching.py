"""Dynamic batching against serial serving and the raw batched pipeline, and a 4x overload.

Run: `python -m bench.batching --out docs/bench`. One `easel serve` holds a tiny random SD
pipeline three times over: `batched` (up to 8 images a run), `serial` (one image a run, as
peers serve) and `bounded` (batched, 8 may wait). Closed-loop aiohttp clients at concurrency
1, 2, 4, 8 and 16 send 1-image generations; between them the same pipeline, loaded in this
process, is called directly with batch size min(concurrency, 8): the ceiling. Then 64 clients
(4x what `bounded` can hold running and waiting) hammer it while the server's memory is sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.helpers import Server, start_server

from bench.common import drive, pct
from easel.backends.diffusion import tiny

SIZE, STEPS, MAX_BATCH = 128, 8, 8


@dataclass
class Row:
    mode: str
    concurrency: int
    images_per_s: float
    p50_ms: float
    p99_ms: float


def config(folder: Path) -> str:
    def model(name: str, extra: str) -> str:
        return f"""
[[models]]
id = "{name}"
backend = "diffusers"
sizes = ["{SIZE}x{SIZE}"]
{extra}
[models.options]
path = "{folder}"
dtype = "float32"
guidance_scale = 0.0
"""

    return (
        'log_level = "warning"\n'
        + model("batched", f"max_batch_size = {MAX_BATCH}\nbatch_window_ms = 15")
        + model("serial", "max_batch_size = 1")
        + model("bounded", f"max_batch_size = {MAX_BATCH}\nbatch_window_ms = 15\nmax_queue = 8")
    )


def body(model: str) -> Any:
    return lambda i: {"model": model, "prompt": f"a lighthouse {i}", "size": f"{SIZE}x{SIZE}", "steps": STEPS}


def served(url: str, model: str, concurrency: int, seconds: float) -> Row:
    total = max(3 * concurrency, round(seconds * {"batched": 35, "serial": 14}[model]))
    load = asyncio.run(drive(url, concurrency, total, body(model), warm_up=concurrency))
    ms = [x * 1000 for x in load.latencies]
    return Row(model, concurrency, load.ok / load.elapsed, pct(ms, 0.5), pct(ms, 0.99))


def raw(pipe: Any, concurrency: int, seconds: float) -> Row:
    import torch

    batch = min(concurrency, MAX_BATCH)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        pipe(
            [f"a lighthouse {i}" for i in range(batch)],
            num_inference_steps=STEPS,
            height=SIZE,
            width=SIZE,
            guidance_scale=0.0,
            generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
        )
        times.append(time.perf_counter() - start)
    ms = [t * 1000 for t in times]
    return Row("raw", concurrency, batch * len(times) / sum(times), pct(ms, 0.5), pct(ms, 0.99))


def overload(server: Server, seconds: float) -> dict[str, float]:
    """64 clients against `bounded` (8 running + 8 waiting) that retry 503s when told to, as the
    SDKs do: the latency of admitted requests stays bounded by the queue, and memory flat."""
    rss: list[int] = []
    done = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{server.process.pid}/status")
        while not done.is_set():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    load = asyncio.run(drive(server.url, 64, round(seconds * 40), body("bounded"), obey_retry=True))
    done.set()
    sampler.join()
    ms = [x * 1000 for x in load.latencies]
    third = max(1, len(rss) // 3)
    return {
        "clients": 64,
        "requests": sum(load.statuses.values()),
        "ok": load.ok,
        "refused_503": load.statuses.get(503, 0),
        "p50_ms": pct(ms, 0.5),
        "p99_ms": pct(ms, 0.99),
        "rss_first_third_mb": statistics.fmean(rss[:third]) / 1024,
        "rss_last_third_mb": statistics.fmean(rss[-third:]) / 1024,
        "rss_max_mb": max(rss) / 1024,
    }


def _median(rounds: list[Row]) -> Row:
    def med(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in rounds))

    return Row(rounds[0].mode, rounds[0].concurrency, med("images_per_s"), med("p50_ms"), med("p99_ms"))


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    styles = {
        "raw": ("raw pipeline, batch min(c, 8)", "--", "black"),
        "batched": ("easel, batching", "o-", "tab:blue"),
        "serial": ("easel, serial (as peers)", "s-", "tab:orange"),
    }
    for mode, (label, style, colour) in styles.items():
        mine = [r for r in rows if r.mode == mode]
        xs = [r.concurrency for r in mine]
        left.plot(xs, [r.images_per_s for r in mine], style, color=colour, label=label)
        if mode != "raw":
            right.plot(xs, [r.p50_ms for r in mine], style, color=colour, label=f"{label}, p50")
            right.plot(xs, [r.p99_ms for r in mine], style, color=colour, alpha=0.35, label=f"{label}, p99")
    left.set(xscale="log", xlabel="concurrency", ylabel="images/s", title="throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="latency (ms)", title="latency")
    for ax in (left, right):
        ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
        ax.legend(fontsize=8)
    fig.suptitle(f"tiny SD, {SIZE}x{SIZE}, {STEPS} steps, 2 vCPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=12.0, help="per mode and concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch
    from diffusers import DiffusionPipeline

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny.save("sd", Path(tmp) / "sd")
        pipe = DiffusionPipeline.from_pretrained(str(folder), dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        server = start_server(Path(tmp), config(folder))
        try:
            for concurrency in (1, 2, 4, 8, 16):
                # Short alternating rounds, so that the three modes see the same moods of this
                # shared machine; medians over the rounds.
                rounds: list[Row] = []
                for _ in range(args.rounds):
                    part = args.seconds / args.rounds
                    rounds.append(raw(pipe, concurrency, part))
                    rounds.append(served(server.url, "batched", concurrency, part))
                    rounds.append(served(server.url, "serial", concurrency, part))
                for mode in ("raw", "batched", "serial"):
                    rows.append(_median([r for r in rounds if r.mode == mode]))
                print(
                    *(f"{r.mode} c={r.concurrency}: {r.images_per_s:.1f} img/s" for r in rows[-3:]), sep="; "
                )
            overloaded = overload(server, args.seconds)
        finally:
            server.stop()
    print("| concurrency | raw images/s | batched images/s | serial images/s | batched / serial "
          "| batched / raw | batched p50 / p99 | serial p50 / p99 |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in (1, 2, 4, 8, 16):
        r, b, s = (
            next(x for x in rows if x.mode == m and x.concurrency == c) for m in ("raw", "batched", "serial")
        )
        print(
            f"| {c} | {r.images_per_s:.1f} | {b.images_per_s:.1f} | {s.images_per_s:.1f} | "
            f"{b.images_per_s / s.images_per_s:.2f}x | {b.images_per_s / r.images_per_s:.0%} | "
            f"{b.p50_ms:.0f} / {b.p99_ms:.0f} ms | {s.p50_ms:.0f} / {s.p99_ms:.0f} ms |"
        )
    print("overload:", json.dumps(overloaded))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "batching.json").write_text(
            json.dumps({"rows": [asdict(r) for r in rows], "overload": overloaded}, indent=2)
        )
        plot(rows, args.out / "batching.png")


if __name__ == "__main__":
    main()
