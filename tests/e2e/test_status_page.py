"""The status page in a real headless browser (Debian's chromium), as an operator sees it."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from quantops_exporter.checks.catalog import CHECK_NAMES
from quantops_exporter.simulator.demo import OLD_MANIFOLD
from quantops_exporter.simulator.scenarios import Scenario
from quantops_exporter.simulator.stack import SepSimulator
from tests.e2e.conftest import binary, until

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs"
# A phone, a laptop, a desktop: the widths the issue saw the page at. Each screenshot is the
# top of the page at that viewport (docs/status-page-<width>.png; UPDATE_SCREENSHOT=1 refreshes).
SCREENSHOT_SIZES = {390: 2400, 1400: 1900, 1920: 1700}

# Run inside the page (in a same-origin iframe `width` pixels wide: headless Chromium will not
# make a window narrower than 500 px): measures what an operator would see and writes it into the
# parent's DOM, which --dump-dom returns. The page itself has no script; only this test adds one.
PROBE = """<script>
(() => { try {
  const report = {width: innerWidth, scrollWidth: document.documentElement.scrollWidth,
    rows: 0, texts: 0, clipped: [], overlaps: [], lowContrast: [], minContrast: 99};
  const rects = (node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    return [...range.getClientRects()].filter((r) => r.width > 0.5 && r.height > 0.5);
  };
  const meet = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
    Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const within = (r, box) => r.left >= box.left - 1 && r.right <= box.right + 1 &&
    r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  const name = (el) => (el.closest("[data-check]")?.dataset.check || "") + " " +
    el.tagName.toLowerCase() + "." + el.className;
  // 1. In every board row and attention item, each part's text stays inside its own box and
  //    the status never meets the summary (or anything else in the row).
  for (const row of document.querySelectorAll("tr[data-check], .attention > li")) {
    report.rows++;
    const parts = [...row.querySelectorAll(":scope > td, h3 > *, :scope > p, .remedy")];
    for (const part of parts) {
      const box = part.getBoundingClientRect();
      for (const r of rects(part)) {
        if (!within(r, box)) report.clipped.push(name(part));
      }
    }
    const status = row.querySelector(".status");
    const summary = row.querySelector(".summary") || row.children[2];
    for (const a of rects(status)) for (const b of rects(summary)) {
      if (meet(a, b)) report.overlaps.push("status/summary " + row.dataset.check);
    }
  }
  // 2. No two pieces of text anywhere on the page overlap; 3. each has 4.5:1 contrast on the
  //    background it is painted on.
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim() || node.parentElement.closest("script,style")) continue;
    const found = rects(node);
    if (found.length) texts.push([node, found]);
  }
  report.texts = texts.length;
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    for (const a of texts[i][1]) for (const b of texts[j][1]) {
      if (meet(a, b)) report.overlaps.push(
        JSON.stringify(texts[i][0].textContent.trim().slice(0, 30)) + " over " +
        JSON.stringify(texts[j][0].textContent.trim().slice(0, 30)));
    }
  }
  const rgba = (css) => {
    const v = css.match(/[\\d.]+/g).map(Number);
    return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const over = (top, under) => top.slice(0, 3).map((c, k) => c * top[3] + under[k] * (1 - top[3]))
    .concat([1]);
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => v / 255)
      .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  for (const [node] of texts) {
    const el = node.parentElement, layers = [];
    for (let at = el; at; at = at.parentElement) {
      layers.push(rgba(getComputedStyle(at).backgroundColor));
    }
    let ground = [255, 255, 255, 1];
    for (const layer of layers.reverse()) ground = over(layer, ground);
    const fg = over(rgba(getComputedStyle(el).color), ground);
    const [hi, lo] = [luminance(fg), luminance(ground)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    report.minContrast = Math.min(report.minContrast, Math.round(ratio * 100) / 100);
    if (ratio < 4.5) report.lowContrast.push(node.textContent.trim().slice(0, 30) + " " +
      ratio.toFixed(2));
  }
  parent.document.getElementById("report-%(width)d").textContent = JSON.stringify(report);
} catch (error) {
  parent.document.getElementById("report-%(width)d").textContent = JSON.stringify(
    {error: String(error)});
} })();
</script>"""


async def chromium(url: str, tmp: Path, *args: str) -> str:
    """Run headless chromium on `url` with `args`; its stdout."""
    process = await asyncio.create_subprocess_exec(
        binary("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
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


def attention(dom: str) -> dict[str, str]:
    """Each item of the "Needs attention" list and its status."""
    return dict(
        re.findall(
            r'<li class="[a-z]+" id="attention-[a-z_]+" data-check="([a-z_]+)" '
            r'data-status="([a-z]+)"',
            dom,
        )
    )


def failing_rows(dom: str) -> dict[str, str]:
    """Each board row shown failing or erroring, with the reason shown beside its status."""
    return dict(
        re.findall(
            r'<tr class="(?:fail|error)" id="check-[a-z_]+" data-check="([a-z_]+)" '
            r'data-status="(?:fail|error)">(?:(?!</tr>).)*?<small class="reason">\(([a-z_]+)\)',
            dom,
            re.DOTALL,
        )
    )


def besides(dom: str, meant: set[str]) -> dict[str, str]:
    """The rows failing besides the `meant` ones. On a loaded machine a check may time out
    (its row then says so, rightly); none may fail for any other reason."""
    extra = {c: r for c, r in failing_rows(dom).items() if c not in meant}
    assert set(extra.values()) <= {"timeout"}, f"failing besides {meant}: {extra}"
    return extra


def probed(page: str, width: int) -> str:
    """`page` with PROBE run at its end, reporting for `width`."""
    return page.replace("</body>", PROBE % {"width": width} + "</body>")


async def measure(page: str, tmp: Path, *, dark: bool = False) -> dict[int, dict[str, Any]]:
    """Lay `page` out at each width in Chromium; what PROBE measured, by width."""
    frames = "".join(
        f'<pre id="report-{width}">not run</pre><iframe style="border:0;width:{width}px;'
        f'height:900px" srcdoc="{html.escape(probed(page, width), quote=True)}"></iframe>'
        for width in SCREENSHOT_SIZES
    )
    wrapper = tmp / "measure.html"
    wrapper.write_text(f"<!doctype html><html><body>{frames}</body></html>", encoding="utf-8")
    args = ["--dump-dom", "--window-size=2200,1000", *(["--force-dark-mode"] if dark else [])]
    dom = await chromium(wrapper.as_uri(), tmp, *args)
    reports = {}
    for width in SCREENSHOT_SIZES:
        found = re.search(rf'<pre id="report-{width}">(.*?)</pre>', dom)
        assert found and found[1] != "not run", f"the probe did not run at {width} px"
        reports[width] = json.loads(html.unescape(found[1]))
        assert "error" not in reports[width], reports[width]
    return reports


async def test_a_broken_key_turns_its_row_red_in_the_browser(
    stack: tuple[SepSimulator, Any], exporter: int, tmp_path: Path
) -> None:
    """Every check has a row; breaking a key as the demo prints turns its row to failing, with
    the reason in words and the runbook link, and puts it in the "Needs attention" list the
    headline's count links to; no other check fails for it."""
    sim, _calendar = stack
    url = f"http://127.0.0.1:{exporter}/"

    async def dom_when(predicate: Any) -> str | None:
        dom = await chromium(url, tmp_path, "--dump-dom")
        return dom if predicate(rows(dom)) else None

    dom = await until(
        lambda: dom_when(lambda r: set(r.values()) == {"ok"}), 30, "every row ok in the browser"
    )
    assert set(rows(dom)) == CHECK_NAMES
    assert attention(dom) == {} and "Nothing: every check passes" in dom

    assert sim.server is not None
    valkey = aioredis.Redis.from_url(sim.server.url)
    await valkey.set("ws:last:manifold:EUR_USD", OLD_MANIFOLD)  # what the demo tells users
    try:
        dom = await until(
            lambda: dom_when(lambda r: r.get("manifold_freshness") == "fail"),
            15,
            "the manifold row failing in the browser",
        )
        row = dom[dom.index('id="check-manifold_freshness"') :]
        row = row[: row.index("</tr>")]
        assert "✗ fail" in row and "(stale)" in row and "EUR_USD" in row
        assert re.search(r'href="https://[^"]+02_Operations_Runbook\.md#pre-open-spin-up', row)
        extra = besides(dom, {"manifold_freshness"})  # the others are unaffected
        assert f'<a href="#attention">{1 + len(extra)} of 22 checks failing</a>' in dom
        assert attention(dom) == {"manifold_freshness": "fail"} | dict.fromkeys(extra, "error")
        assert "<strong>Freshness</strong>" in dom  # the runbook's words for it
    finally:
        await valkey.delete("ws:last:manifold:EUR_USD")
        await valkey.aclose()


async def test_what_fails_is_first_readable_and_never_overlaps_at_three_widths(
    stack: tuple[SepSimulator, Any], exporter: int, tmp_path: Path
) -> None:
    """A fault scenario (malformed payloads: three checks in error, and the kill switch engaged
    while the market is open): at 390, 1400 and 1920 px the status and summary of every row and
    item stay apart, no text overlaps any other, nothing scrolls sideways, and every piece of
    text has at least 4.5:1 contrast, in the light and the dark scheme. Screenshots of each width
    go to docs/ with UPDATE_SCREENSHOT=1."""
    sim, _calendar = stack
    url = f"http://127.0.0.1:{exporter}/"
    expected = {
        "kill_switch": "fail",
        "manifold_freshness": "error",
        "gates_blob_freshness": "error",
        "gates_sanity": "error",
    }
    await sim.set_scenario(Scenario.BAD_PAYLOAD)
    assert sim.server is not None
    valkey = aioredis.Redis.from_url(sim.server.url)
    await valkey.set("ops:kill_switch", "1")
    try:
        async with aiohttp.ClientSession() as http:

            async def page_when_failing() -> str | None:
                async with http.get(url) as response:
                    text = await response.text()
                return text if expected.items() <= attention(text).items() else None

            page = await until(page_when_failing, 20, f"{expected} needing attention")
        extra = besides(page, set(expected))
        assert attention(page) == expected | dict.fromkeys(extra, "error")
        assert f'<a href="#attention">{len(expected) + len(extra)} of 22 checks failing</a>' in page

        for dark in (False, True):
            for width, seen in (await measure(page, tmp_path, dark=dark)).items():
                where = f"{width} px{' dark' if dark else ''}"
                assert seen["width"] == width, where
                assert seen["rows"] == len(CHECK_NAMES) + len(attention(page)), where
                assert seen["texts"] > 200, where  # the probe saw the page
                assert seen["overlaps"] == [], where
                assert seen["clipped"] == [], where
                assert seen["scrollWidth"] <= width, where  # no sideways scrolling
                assert seen["lowContrast"] == [], where
                assert seen["minContrast"] >= 4.5, where

        for width, height in SCREENSHOT_SIZES.items():
            shot = tmp_path / f"status-page-{width}.png"
            await chromium(url, tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
            if os.environ.get("UPDATE_SCREENSHOT"):  # set it to refresh docs/status-page-*.png
                shutil.copyfile(shot, DOCS / shot.name)
    finally:
        await valkey.delete("ops:kill_switch")
        await valkey.aclose()
        await sim.set_scenario(Scenario.HEALTHY)
