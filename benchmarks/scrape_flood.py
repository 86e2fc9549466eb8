"""1,000 concurrent scrapes against the daemon on the simulated stack: do the checks keep their
schedule? Prints the scheduler-lag quantiles measured by the daemon itself while the flood runs.

    .venv/bin/python benchmarks/scrape_flood.py [--concurrency 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.simulator.valkey_server import free_port


def lag_buckets(text: str) -> dict[float, float]:
    """Cumulative scheduler-lag bucket counts summed over every check."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "quantops_exporter_scheduler_lag_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The bucket bound holding quantile `q` of the runs between the two scrapes."""
    delta = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = delta[float("inf")]
    for le, count in delta.items():
        if count >= q * total:
            return le
    return float("inf")


async def flood(url: str, concurrency: int, seconds: float) -> tuple[int, float]:
    """Keep `concurrency` scrapes in flight for `seconds`; (scrapes done, slowest seconds)."""
    done, slowest = 0, 0.0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal done, slowest
            while time.monotonic() < deadline:
                started = time.monotonic()
                async with http.get(url) as response:
                    await response.read()
                slowest = max(slowest, time.monotonic() - started)
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, slowest


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTOPS_")}
    env["QUANTOPS_LISTEN_ADDRESS"] = f"127.0.0.1:{port}"
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quantops_exporter", "demo", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/-/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            await asyncio.sleep(args.seconds)  # a quiet baseline
            async with http.get(url) as response:
                quiet = lag_buckets(await response.text())
            await asyncio.sleep(args.seconds)
            async with http.get(url) as response:
                before = lag_buckets(await response.text())
            scrapes, slowest = await flood(url, args.concurrency, args.seconds)
            async with http.get(url) as response:
                after = lag_buckets(await response.text())
        print(
            f"quiet {args.seconds:.0f}s: lag p50 <= {quantile(quiet, before, 0.5)}s, "
            f"p99 <= {quantile(quiet, before, 0.99)}s"
        )
        print(
            f"flood {args.concurrency} concurrent for {args.seconds:.0f}s: {scrapes} scrapes "
            f"({scrapes / args.seconds:.0f}/s), slowest {slowest:.2f}s; scheduler lag "
            f"p50 <= {quantile(before, after, 0.5)}s, p99 <= {quantile(before, after, 0.99)}s"
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        await daemon.wait()


if __name__ == "__main__":
    asyncio.run(main())
