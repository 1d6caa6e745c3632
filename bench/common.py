"""What the benchmarks share: a closed-loop aiohttp load generator and percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Load:
    """The outcome of one run of `drive`."""

    elapsed: float = 0.0
    #: Seconds per successful request.
    latencies: list[float] = field(default_factory=list)
    #: How many answers had each status.
    statuses: dict[int, int] = field(default_factory=dict)
    #: The first few successful response bodies.
    samples: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(
    url: str,
    concurrency: int,
    total: int,
    body: Callable[[int], dict[str, object]],
    *,
    warm_up: int = 0,
    keep: int = 0,
    obey_retry: bool = False,
    headers: dict[str, str] | None = None,
    path: str = "/v1/images/generations",
) -> Load:
    """`total` POSTs to /v1/images/generations from `concurrency` workers on keep-alive
    connections, each sending its next request when the last one is answered. With
    `obey_retry`, a 503 is retried after its `retry-after-ms`; latency counts the last attempt.

    aiohttp is the leanest Python client measured here, so the client's own cost stays small.
    """
    load = Load()
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as client:

        async def post(i: int) -> tuple[int, bytes, float]:
            async with client.post(path, json=body(i)) as response:
                wait = float(response.headers.get("retry-after-ms", 0)) / 1000
                return response.status, await response.read(), wait

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                status, data, wait = await post(i)
                load.statuses[status] = load.statuses.get(status, 0) + 1
                while status == 503 and obey_retry:  # as the SDKs do: wait as told, then retry
                    await asyncio.sleep(wait)
                    start = time.perf_counter()
                    status, data, wait = await post(i)
                    load.statuses[status] = load.statuses.get(status, 0) + 1
                if status == 200:
                    load.latencies.append(time.perf_counter() - start)
                    if len(load.samples) < keep:
                        load.samples.append(data)

        await asyncio.gather(*(post(i) for i in range(warm_up)))
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        load.elapsed = time.perf_counter() - start
    return load
