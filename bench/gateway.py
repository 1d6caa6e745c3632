"""easel as a gateway against LiteLLM's proxy, both in front of the same upstream (an easel placeholder).

Run: `python -m bench.gateway --out docs/bench`. It starts the upstream (`easel serve`, the
placeholder, open), two easel gateways (one process each, `backend = "openai"` to the upstream,
with an API key of their own): `easel` records no usage rows, as LiteLLM without a database
does, and `easel+usage` writes its default usage row per request (SQLite); and LiteLLM's proxy
(one worker, `openai/gpt-image-1` to the same upstream, a master key, no database), pinned in
bench/peers/litellm.txt and installed into .bench-peers/litellm on first use (the bench
environment only: never the project's). Rounds alternate between calling the upstream directly
and through each gateway, at 256x256 JPEG and 1024x1024 PNG and
at each concurrency; figures are medians over the rounds: the p50 each gateway adds over the
direct call, and its throughput against the direct one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.helpers import Server, free_port, start_server, wait_until_up

from bench.common import drive, pct

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".bench-peers" / "litellm"
REQUIREMENTS = ROOT / "bench" / "peers" / "litellm.txt"
GATEWAY_KEY = "sk-bench-gateway"
LITELLM_KEY = "sk-bench-litellm"
CASES = {"256-jpeg": ("256x256", "jpeg"), "1024-png": ("1024x1024", "png")}
ROUTES = ("direct", "easel", "easel+usage", "litellm")


@dataclass
class Row:
    case: str
    concurrency: int
    direct_p50_ms: float
    easel_p50_ms: float
    litellm_p50_ms: float
    easel_added_ms: float
    litellm_added_ms: float
    direct_rps: float
    easel_rps: float
    litellm_rps: float
    #: The default gateway, which writes a usage row per request.
    usage_added_ms: float
    usage_rps: float

    @property
    def added_ratio(self) -> float:
        """LiteLLM's added p50 over easel's."""
        return self.litellm_added_ms / max(self.easel_added_ms, 0.01)

    @property
    def throughput_ratio(self) -> float:
        return self.easel_rps / self.litellm_rps


def litellm_python() -> Path:
    """The bench environment's Python with LiteLLM's proxy, installed from the pins when missing."""
    python = PEERS / "bin" / "python"
    if not (PEERS / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return python


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_litellm(tmp: Path, upstream: Server) -> Proxy:
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-image-1\n    litellm_params:\n      model: openai/gpt-image-1\n"
        f"      api_base: {upstream.url}/v1\n      api_key: sk-unused\n"
        f"general_settings:\n  master_key: {LITELLM_KEY}\n"
    )
    port = free_port()
    env = {**os.environ, "LITELLM_TELEMETRY": "False", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    binary = litellm_python().parent / "litellm"
    log = (tmp / "litellm.log").open("wb")
    command = [
        str(binary),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    proxy = Proxy(process, f"http://127.0.0.1:{port}")
    try:
        wait_until_up(process, f"{proxy.url}/health/liveliness", tmp / "litellm.log", "litellm")
    except RuntimeError:
        proxy.stop()
        raise
    return proxy


async def rounds(urls: dict[str, tuple[str, dict[str, str] | None]], case: str, concurrency: int, total: int,
                 count: int) -> dict[str, tuple[list[float], list[float]]]:  # fmt: skip
    size, fmt = CASES[case]

    def body(i: int) -> dict[str, object]:
        return {"model": "gpt-image-1", "prompt": f"a paper boat {i % 7}", "size": size, "output_format": fmt}

    results: dict[str, tuple[list[float], list[float]]] = {r: ([], []) for r in ROUTES}
    for _ in range(count):
        for route in ROUTES:
            url, headers = urls[route]
            load = await drive(url, concurrency, total, body, warm_up=concurrency, headers=headers)
            assert load.statuses == {200: total}, (route, load.statuses)
            results[route][0].append(pct(load.latencies, 0.5) * 1000)
            results[route][1].append(load.ok / load.elapsed)
    return results


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{r.case}\nc={r.concurrency}" for r in rows]
    xs = range(len(rows))
    left.bar([x - 0.27 for x in xs], [r.easel_added_ms for r in rows], 0.27, label="easel")
    left.bar(list(xs), [r.usage_added_ms for r in rows], 0.27, label="easel, usage rows")
    left.bar([x + 0.27 for x in xs], [r.litellm_added_ms for r in rows], 0.27, label="LiteLLM proxy")
    left.set_xticks(list(xs), labels)
    left.set_ylabel("p50 added over the direct call, ms")
    left.legend()
    right.bar([x - 0.27 for x in xs], [r.easel_rps / r.direct_rps for r in rows], 0.27, label="easel")
    right.bar(list(xs), [r.usage_rps / r.direct_rps for r in rows], 0.27, label="easel, usage rows")
    right.bar(
        [x + 0.27 for x in xs], [r.litellm_rps / r.direct_rps for r in rows], 0.27, label="LiteLLM proxy"
    )
    right.set_xticks(list(xs), labels)
    right.set_ylabel("throughput, share of the direct call's")
    right.legend()
    fig.suptitle("Gateways in front of the same upstream (easel placeholder)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="Folder for gateway.json and .png.")
    parser.add_argument("--total", type=int, default=200, help="Requests per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name in ("upstream", "easel", "usage"):
            (tmp / name).mkdir()
        upstream = start_server(tmp / "upstream")
        relay = (f'api_keys = ["{GATEWAY_KEY}"]\n[[models]]\nid = "gpt-image-1"\nbackend = "openai"\n'
                 f'[models.options]\nbase_url = "{upstream.url}/v1"\nsend_key = false\n')  # fmt: skip
        gateway = start_server(tmp / "easel", "usage_records = false\n" + relay)
        recording = start_server(tmp / "usage", relay)
        litellm = start_litellm(tmp, upstream)
        key = {"authorization": f"Bearer {GATEWAY_KEY}"}
        urls = {
            "direct": (upstream.url, None),
            "easel": (gateway.url, key),
            "easel+usage": (recording.url, key),
            "litellm": (litellm.url, {"authorization": f"Bearer {LITELLM_KEY}"}),
        }
        try:
            for case in args.cases:
                for c in args.concurrency:
                    got = asyncio.run(rounds(urls, case, c, args.total, args.rounds))
                    p50 = {r: statistics.median(got[r][0]) for r in ROUTES}
                    rps = {r: statistics.median(got[r][1]) for r in ROUTES}
                    added = {r: round(p50[r] - p50["direct"], 2) for r in ROUTES}
                    rows.append(Row(case, c, round(p50["direct"], 2), round(p50["easel"], 2),
                                    round(p50["litellm"], 2), added["easel"], added["litellm"],
                                    round(rps["direct"], 1), round(rps["easel"], 1), round(rps["litellm"], 1),
                                    added["easel+usage"], round(rps["easel+usage"], 1)))  # fmt: skip
                    print(rows[-1], flush=True)
        finally:
            litellm.stop()
            gateway.stop()
            recording.stop()
            upstream.stop()
    print("| case | c | direct p50 ms | easel added p50 ms | LiteLLM added p50 ms | LiteLLM / easel added "
          "| direct req/s | easel req/s | LiteLLM req/s | easel / LiteLLM req/s | easel+usage added ms "
          "| easel+usage req/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.case} | {r.concurrency} | {r.direct_p50_ms} | **{r.easel_added_ms}** | "
              f"{r.litellm_added_ms} | {r.added_ratio:.1f}x | {r.direct_rps} | {r.easel_rps} | "
              f"{r.litellm_rps} | "
              f"**{r.throughput_ratio:.2f}x** | {r.usage_added_ms} | {r.usage_rps} |")  # fmt: skip
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gateway.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
        plot(rows, args.out / "gateway.png")


if __name__ == "__main__":
    main()
