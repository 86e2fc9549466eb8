"""The status page in a real headless browser (Debian's chromium), as an operator sees it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.demo import OLD_MANIFOLD
from quantops_exporter.simulator.stack import SepSimulator
from tests.e2e.conftest import binary, until

pytestmark = pytest.mark.e2e
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs/status-page.png"


async def chromium(url: str, tmp: Path, *args: str) -> str:
    """Run headless chromium on `url` with `args`; its stdout."""
    process = await asyncio.create_subprocess_exec(
        binary("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    return stdout.decode()


def rows(dom: str) -> dict[str, str]:
    """Each check row's status as the browser rendered it."""
    return dict(
        re.findall(
            r'<tr class="[a-z]+" id="check-[a-z_]+" data-check="([a-z_]+)" '
            r'data-status="([a-z]+)"',
            dom,
        )
    )


async def test_a_broken_key_turns_its_row_red_in_the_browser(
    stack: tuple[SepSimulator, Any], exporter: int, tmp_path: Path
) -> None:
    """Every check has a row; breaking a key as the demo prints turns its row to failing within
    one interval (1 s here), with the reason in words and the runbook link."""
    sim, _calendar = stack
    url = f"http://127.0.0.1:{exporter}/"

    async def dom_when(predicate: Any) -> str | None:
        dom = await chromium(url, tmp_path, "--dump-dom")
        return dom if predicate(rows(dom)) else None

    dom = await until(
        lambda: dom_when(lambda r: set(r.values()) == {"ok"}), 30, "every row ok in the browser"
    )
    assert set(rows(dom)) == CHECK_NAMES

    assert sim.server is not None
    valkey = aioredis.Redis.from_url(sim.server.url)
    await valkey.set("ws:last:manifold:EUR_USD", OLD_MANIFOLD)  # what the demo tells users
    broken_at = time.monotonic()
    try:
        dom = await until(
            lambda: dom_when(lambda r: r.get("manifold_freshness") == "fail"),
            15,
            "the manifold row failing in the browser",
        )
        took = time.monotonic() - broken_at
        row = dom[dom.index('id="check-manifold_freshness"') :]
        row = row[: row.index("</tr>")]
        assert "✗ fail" in row and "(stale)" in row and "EUR_USD" in row
        assert re.search(r'href="https://[^"]+02_Operations_Runbook\.md#pre-open-spin-up', row)
        assert rows(dom)["valkey_ping"] == "ok"  # the others are unaffected
        assert "1 of 22 checks failing" in dom
        # Chromium itself takes a second or two per page: allow for it on top of the interval.
        assert took < 10

        shot = tmp_path / "status-page.png"
        await chromium(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,2200")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        if os.environ.get("UPDATE_SCREENSHOT"):  # set it to refresh docs/status-page.png
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        await valkey.delete("ws:last:manifold:EUR_USD")
        await valkey.aclose()
