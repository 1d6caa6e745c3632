"""What keys, rate limits, budgets and usage records cost per request, against the same server without them.

Run: `python -m bench.governance --out docs/bench`. For each store (SQLite; PostgreSQL; PostgreSQL
with Redis rate limits) it starts two `easel serve` processes side by side on throwaway
databases (PostgreSQL and Redis are real servers started here, as the tests do):
- off: open (no keys), no usage rows;
- on: a managed key with requests and images per minute and an image budget, a usage row per
  request (charged and settled in the database).
Both serve the placeholder at 256x256 JPEG, the cheapest render, so the added cost shows. Rounds
alternate between the two; figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.backing import start_postgres, start_redis
from tests.helpers import Server, start_server

from bench.common import drive, pct


@dataclass
class Row:
    store: str
    concurrency: int
    off_p50_ms: float
    on_p50_ms: float
    added_p50_ms: float
    off_rps: float
    on_rps: float
    ratio: float


def body(i: int) -> dict[str, object]:
    return {"prompt": f"a paper boat {i % 7}", "size": "256x256", "output_format": "jpeg"}


def make_key(database_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "easel", "keys", "create", "--json", "--database-url", database_url,
         "--rpm", "1000000", "--ipm", "1000000", "--budget-images", "1000000000"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    secret: str = json.loads(done.stdout)["secret"]
    return secret


async def rounds(
    off: Server, on: Server, key: str, concurrency: int, total: int, count: int
) -> tuple[list[float], ...]:
    results: tuple[list[float], ...] = ([], [], [], [])
    for _ in range(count):
        for index, (server, headers) in enumerate(((off, None), (on, {"authorization": f"Bearer {key}"}))):
            load = await drive(server.url, concurrency, total, body, warm_up=concurrency, headers=headers)
            assert load.statuses == {200: total}, load.statuses
            results[index].append(pct(load.latencies, 0.5) * 1000)
            results[2 + index].append(load.ok / load.elapsed)
    return results


def measure(store: str, off_db: str, database_url: str, limits: str, tmp: Path, concurrencies: list[int],
            total: int, count: int) -> list[Row]:  # fmt: skip
    (tmp / "off").mkdir()
    (tmp / "on").mkdir()
    off = start_server(tmp / "off", f'database_url = "{off_db}"\nusage_records = false\n')
    on = start_server(tmp / "on", f'database_url = "{database_url}"\nrate_limit_storage = "{limits}"\n')
    key = make_key(database_url)
    rows = []
    try:
        for c in concurrencies:
            off_p50, on_p50, off_rps, on_rps = asyncio.run(rounds(off, on, key, c, total, count))
            a, b = statistics.median(off_p50), statistics.median(on_p50)
            x, y = statistics.median(off_rps), statistics.median(on_rps)
            rows.append(Row(store, c, round(a, 2), round(b, 2), round(b - a, 2), round(x, 1), round(y, 1),
                            round(y / x, 3)))  # fmt: skip
            print(rows[-1], flush=True)
    finally:
        off.stop()
        on.stop()
    return rows


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c1 = [r for r in rows if r.concurrency == min(x.concurrency for x in rows)]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(c1))
    ax.bar([x - 0.2 for x in xs], [r.off_p50_ms for r in c1], 0.4, label="off (open, no usage rows)")
    ax.bar([x + 0.2 for x in xs], [r.on_p50_ms for r in c1], 0.4, label="on (key, limits, budget, usage)")
    ax.set_xticks(list(xs), [r.store for r in c1])
    ax.set_ylabel("p50 latency, ms (concurrency 1)")
    ax.set_title("Cost of auth + rate limits + budget + usage per request")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


STORES = ("sqlite", "postgresql", "postgresql+redis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="Folder for governance.json and .png.")
    parser.add_argument("--total", type=int, default=300, help="Requests per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=list(STORES))
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        postgres = start_postgres(tmp / "pg")
        redis = start_redis()
        try:
            stores = [
                ("sqlite", f"sqlite:///{tmp / 'off.db'}", f"sqlite:///{tmp / 'on.db'}", "memory://"),
                ("postgresql", postgres.database(), postgres.database(), "memory://"),
                ("postgresql+redis", postgres.database(), postgres.database(), redis.url),
            ]
            for store, off_db, on_db, limits in stores:
                if store not in args.stores:
                    continue
                (tmp / store).mkdir()
                rows += measure(store, off_db, on_db, limits, tmp / store, args.concurrency, args.total,
                                args.rounds)  # fmt: skip
        finally:
            redis.stop()
            postgres.stop()
    for r in rows:
        print(f"| {r.store} | {r.concurrency} | {r.off_p50_ms} | {r.on_p50_ms} | **{r.added_p50_ms}** | "
              f"{r.off_rps} | {r.on_rps} | {r.ratio} |")  # fmt: skip
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "governance.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
        plot(rows, args.out / "governance.png")


if __name__ == "__main__":
    main()
