"""End-to-end latency and throughput of 1024² PNG b64_json generations, beside the encode floor.

Run: `python -m bench.latency --out docs/bench` (or `make bench`). It starts `easel serve` on a
free loopback port, drives it with an aiohttp client at each concurrency for several rounds, and
after each round times the PNG encode of the very images the server just returned, alone in this
process (the floor). Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from PIL import Image
from tests.helpers import start_server

from bench.common import drive, pct
from easel.imaging import encode

PROMPTS = [
    "a lighthouse on a cliff at dusk",
    "a red fox in fresh snow",
    "blue whale under sea",
    "a bowl of green apples",
    "purple mountains and a golden sun",
    "a cat on a windowsill",
]


@dataclass
class Row:
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float


def body(i: int) -> dict[str, object]:
    return {
        "model": "gpt-image-1",
        "prompt": PROMPTS[i % len(PROMPTS)],
        "size": "1024x1024",
        "output_format": "png",
        "seed": i,
    }


async def measure(url: str, concurrency: int, total: int) -> tuple[Row, list[bytes]]:
    load = await drive(url, concurrency, total, body, warm_up=2 * concurrency, keep=6)
    ms = [x * 1000 for x in load.latencies]
    row = Row(concurrency, total, total / load.elapsed, pct(ms, 0.5), pct(ms, 0.99), statistics.fmean(ms))
    return row, [base64.b64decode(orjson.loads(s)["data"][0]["b64_json"]) for s in load.samples]


def encode_floor(samples: list[bytes], rounds: int = 30) -> float:
    """Median ms to encode the server's own images as PNG, alone, with easel's encoder."""
    images = [Image.open(io.BytesIO(s)).convert("RGB") for s in samples]
    times = []
    for r in range(rounds):
        image = images[r % len(images)]
        start = time.perf_counter()
        encode(image, "png")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def plot(rows: list[Row], floor: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r.concurrency for r in rows]
    left.plot(xs, [r.p50_ms for r in rows], "o-", label="p50")
    left.plot(xs, [r.p99_ms for r in rows], "s-", label="p99")
    left.axhline(floor, color="grey", ls="--", label=f"PNG encode floor ({floor:.1f} ms)")
    left.axhline(1.5 * floor, color="grey", ls=":", label="1.5x floor")
    left.set(xscale="log", yscale="log", xlabel="concurrency", ylabel="latency (ms)", title="latency")
    left.set_xticks(xs, [str(x) for x in xs])
    left.legend()
    right.bar([str(x) for x in xs], [r.rps for r in rows])
    right.set(xlabel="concurrency", ylabel="requests/s", title="throughput")
    fig.suptitle("easel placeholder: 1024x1024 PNG b64_json generations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", type=Path, default=None, help="folder for latency.json and .png")
    args = parser.parse_args()
    rows: list[Row] = []
    floors: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), 'log_level = "warning"\n')
        try:
            for concurrency in args.concurrency:
                rounds = []
                for _ in range(args.rounds):
                    row, samples = asyncio.run(measure(server.url, concurrency, args.requests))
                    rounds.append(row)
                    # The floor, measured right after each round on the images just served, so
                    # that both figures see the same state of this (shared, noisy) machine.
                    floors.append(encode_floor(samples))
                rows.append(_median_row(rounds))
        finally:
            server.stop()
    floor = statistics.median(floors)
    print(f"PNG encode floor (median over {len(floors)} measurements): {floor:.2f} ms")
    print("| concurrency | requests/s | p50 ms | p99 ms | p50 / floor |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.concurrency} | {r.rps:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.p50_ms / floor:.2f}x |"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "latency.json").write_text(
            json.dumps({"floor_ms": floor, "floors_ms": floors, "rows": [asdict(r) for r in rows]}, indent=2)
        )
        plot(rows, floor, args.out / "latency.png")


def _median_row(rounds: list[Row]) -> Row:
    def med(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in rounds))

    return Row(
        rounds[0].concurrency,
        sum(r.requests for r in rounds),
        med("rps"),
        med("p50_ms"),
        med("p99_ms"),
        med("mean_ms"),
    )


if __name__ == "__main__":
    main()
