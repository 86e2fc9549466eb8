"""Cardinality guard: hostile instrument names from the stack never become series; every label
value comes from a closed set."""

from __future__ import annotations

import random
import string

from aiohttp import test_utils, web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from quantops_exporter.board import Board
from quantops_exporter.checks.catalog import CHECKS, Section
from quantops_exporter.generation import build_generation, open_context
from quantops_exporter.market import FxCalendar
from quantops_exporter.metrics import build_registry
from quantops_exporter.runner import run_check
from quantops_exporter.sources.health import DependencyHealth
from tests.conftest import make_settings

CONFIGURED = ("EUR_USD", "USD_JPY", "GBP_USD")
rng = random.Random(7)
HOSTILE = sorted(
    {
        "".join(rng.choices(string.ascii_uppercase, k=3))
        + "_"
        + "".join(rng.choices(string.ascii_uppercase + '"\\{}=,\n ', k=4))
        for _ in range(600)
    }
    - set(CONFIGURED)
)[:500]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _metrics(request: web.Request) -> web.Response:
    lines = [
        f'sep_rolling_gate{{instrument="{_label(i)}",eligible="1",buf="0.1"}} 1'
        for i in (*CONFIGURED, *HOSTILE)
    ]
    lines += [f'sep_allocator_selected{{instrument="{_label(i)}"}} 1' for i in HOSTILE]
    return web.Response(text="\n".join(lines) + "\n")


async def _pricing(request: web.Request) -> web.Response:
    return web.json_response(
        {"prices": {i: {"bid": 1.0, "ask": 1.0001} for i in (*CONFIGURED, *HOSTILE)}}
    )


async def _positions(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "positions": [
                {"instrument": i, "marginUsed": "1", "long": {"units": "1"}} for i in HOSTILE
            ]
        }
    )


async def _allocation(request: web.Request) -> web.Response:
    return web.json_response({"weights": dict.fromkeys(HOSTILE, 0.0001)})


async def _budget(request: web.Request) -> web.Response:
    return web.json_response({"budget": 27000})


async def test_hostile_instruments_are_counted_never_labelled() -> None:
    """500 unknown (and label-breaking) instrument names: no series carries them, the
    exposition stays valid, and each check counts them in runbook_unconfigured_instruments."""
    app = web.Application()
    for path, handler in {
        "/metrics": _metrics,
        "/api/oanda/pricing": _pricing,
        "/api/oanda/positions": _positions,
        "/api/risk/budget": _budget,
        "/api/risk/allocation-status": _allocation,
    }.items():
        app.router.add_get(path, handler)
    async with test_utils.TestServer(app) as api:
        url = str(api.make_url("")).rstrip("/")
        settings = make_settings(
            sep_api_url=url, hotband_pairs=CONFIGURED, valkey_url="redis://127.0.0.1:1/0"
        )
        board = Board(CHECKS)
        registry, _ = build_registry(board, DependencyHealth(), CHECKS)
        names = ("gates_eligible", "allocator_topk", "spread_guard", "allocation_status")
        async with open_context(build_generation(settings), DependencyHealth()) as ctx:
            for check in CHECKS:
                if check.name in names:
                    board.record(await run_check(check, ctx))
    text = generate_latest(registry).decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    instruments = {s.labels["instrument"] for s in samples if "instrument" in s.labels}
    assert instruments <= {*CONFIGURED, ""}, sorted(instruments - {*CONFIGURED, ""})[:5]
    counted = {
        s.labels["check"]: s.value for s in samples if s.name == "runbook_unconfigured_instruments"
    }
    assert counted == {
        "gates_eligible": 500,
        "allocator_topk": 500,
        "spread_guard": 500,
        "allocation_status": 500,
    }
    assert any(set(name) & set('"\\{}=,\n') for name in HOSTILE)
    # Sections come from the closed set of the runbook's sections, one series each.
    sections = [s.labels["section"] for s in samples if s.name == "runbook_section_ok"]
    assert sorted(sections) == sorted(section.slug for section in Section)


def test_every_label_value_of_the_new_families_is_bounded() -> None:
    """runbook_section_ok has one series per runbook section whatever the board holds, and the
    market's timestamps carry no label at all."""
    board = Board(CHECKS)
    registry, _ = build_registry(board, DependencyHealth(), CHECKS, calendar=FxCalendar)
    families = {f.name: f for f in registry.collect()}
    assert {s.labels["section"] for s in families["runbook_section_ok"].samples} == {
        "pre-open",
        "daily",
        "post-deploy",
        "troubleshooting",
        "recovery",
    }
    for name in ("next_open", "next_close", "last_open"):
        samples = families[f"runbook_market_{name}_timestamp_seconds"].samples
        assert len(samples) == 1 and samples[0].labels == {}


async def _hostile_answer(request: web.Request) -> web.Response:
    """Every endpoint: a body full of label-breaking names, or a 500, by turns of the path."""
    if len(request.path) % 2:
        return web.Response(status=500, text="\n".join(HOSTILE))
    return web.json_response({name: [name] for name in HOSTILE})


async def test_what_a_check_could_not_read_is_named_from_the_configuration() -> None:
    """Every check against an API answering 500s and hostile JSON (with a query string on the
    way) and a Valkey that refuses: each runbook_check_unreadable item is an endpoint path of
    the code or a key template filled with a configured instrument, never the stack's data."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", _hostile_answer)
    async with test_utils.TestServer(app) as api:
        url = str(api.make_url("")).rstrip("/")
        settings = make_settings(
            sep_api_url=url,
            allocator_url=url,
            hotband_pairs=CONFIGURED,
            valkey_url="redis://127.0.0.1:1/0",
        )
        board = Board(CHECKS)
        registry, _ = build_registry(board, DependencyHealth(), CHECKS)
        async with open_context(build_generation(settings), DependencyHealth()) as ctx:
            for check in CHECKS:
                board.record(await run_check(check, ctx))
    text = generate_latest(registry).decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    items = {s.labels["item"] for s in samples if s.name == "runbook_check_unreadable"}
    paths = {
        "/api/kill-switch",
        "/api/trading/mode",
        "/api/oanda/account",
        "/api/oanda/positions",
        "/api/oanda/pricing",
        "/api/candles",
        "/api/risk/allocation-status",
        "/api/risk/budget",
        "/health",
        "/status",
        "/metrics",
    }
    keys = {
        "PING",
        "ops:kill_switch",
        "opt:rolling:gates_blob",
        "risk:alloc_budget",
        "risk:allocation_weights",
        *(
            template.format(instrument=instrument)
            for template in ("ws:last:manifold:{instrument}", "sep:signal_index:{instrument}")
            for instrument in CONFIGURED
        ),
    }
    assert len(items) > 5, items  # the API endpoints and Valkey's keys are all named
    assert items <= paths | keys, sorted(items - paths - keys)
