"""Property-based fuzzing of everything read from the stack: whatever arrives, every check ends
in a closed status and reason, and never in internal_error (a bug)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantops_exporter.checks.catalog import CHECKS
from quantops_exporter.checks.diagnosis import PROCEDURE, Step
from quantops_exporter.checks.recovery import Target
from quantops_exporter.checks.verdict import Reason, Status
from quantops_exporter.deploykit.rules import UNALERTED
from quantops_exporter.market import Session
from quantops_exporter.runner import run_check
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.stack_metrics import parse_exposition
from quantops_exporter.sources.valkey import KeyRead
from tests.factories import make_ctx

PAIRS = ("EUR_USD", "USD_JPY", "GBP_USD")
LABEL_VALUES = frozenset(
    {*PAIRS, *(check.name for check in CHECKS), "api", "valkey", PROCEDURE}
    | {session.value for session in Session}
    | {step.value for step in Step}
    | {target.value for target in Target}
)
KEYS = [
    "kill_switch",
    "mode",
    "oanda_connected",
    "auto_trading_enabled",
    "environment",
    "account",
    "marginUsed",
    "marginAvailable",
    "positions",
    "prices",
    "items",
    "candles",
    "weights",
    "interval",
    "interval_sec",
    "ts",
    "ts_ms",
    "time",
    "timestamp",
    "gates",
    "repetition",
    "hazard",
    "count_1h",
    "bids",
    "asks",
    "price",
    "bid",
    "ask",
    "closeoutBid",
    "closeoutAsk",
    "instrument",
    "units",
    "long",
    "short",
    "budget",
    "margin_available",
    "target_pct",
    *PAIRS,
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        [
            "",
            "0",
            "1",
            "0.5",
            "1.3",
            "-1",
            "NaN",
            "inf",
            "live",
            "true",
            "2027-01-15T08:00:00Z",
            "1758059154076",
            "x" * 40,
        ]
    )
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
valkey_values = st.one_of(
    st.none(),
    st.binary(max_size=60),
    json_values.map(lambda v: json.dumps(v).encode()),
)
metric_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                'sep_rolling_gate{instrument="EUR_USD",eligible="1",buf="0.10"} 1',
                'sep_rolling_gate{instrument="XAU_USD",eligible="1",buf="oops"} 1',
                'sep_allocator_selected{instrument="EUR_USD"} 1',
                "sep_span_integrity_ok 0",
                "sep_span_integrity_ok NaN",
                "# TYPE sep_rolling_gate gauge",
                "garbage line {",
                'sep_rolling_gate{eligible="1"} +Inf',
            ]
        ),
        st.text(max_size=40),
    ),
    max_size=8,
).map("\n".join)


class FuzzHttp:
    """Answers every GET with the generated payload."""

    def __init__(self, payload: Any, text: str) -> None:
        self.payload, self.text = payload, text

    async def get_json(self, dependency: Dependency, url: str, params: Any = None) -> Any:
        return self.payload

    async def get_text(self, dependency: Dependency, url: str, params: Any = None) -> str:
        return self.text

    async def get_bytes(self, dependency: Dependency, url: str, params: Any = None) -> bytes:
        return b"ok"


class FuzzValkey:
    """Answers every read with generated values (and sometimes WRONGTYPE)."""

    def __init__(self, value: bytes | None, wrong: bool, score: Any) -> None:
        self.value, self.wrong, self.score = value, wrong, score

    def _read(self, key: str) -> KeyRead:
        return KeyRead(key, None if self.wrong else self.value, wrong_type=self.wrong)

    async def ping(self) -> float:
        return 0.001

    async def get(self, key: str) -> KeyRead:
        return self._read(key)

    async def get_many(self, keys: list[str], *, with_ttl: bool = False) -> list[KeyRead]:
        return [
            KeyRead(
                k,
                None if self.wrong else self.value,
                wrong_type=self.wrong,
                pttl_ms=1000 if with_ttl else None,
            )
            for k in keys
        ]

    async def newest_members(self, keys: list[str]) -> list[KeyRead]:
        member = (self.value or b"", self.score)
        return [
            KeyRead(k, None if self.wrong or self.value is None else member, wrong_type=self.wrong)
            for k in keys
        ]

    async def hgetall(self, key: str) -> KeyRead:
        fields = None if self.value is None else {b"budget": self.value, b"target_pct": b"0.3"}
        return KeyRead(key, None if self.wrong else fields, wrong_type=self.wrong)


def run_all(payload: Any, text: str, value: bytes | None, wrong: bool, score: Any) -> None:
    """Run the whole catalog against the generated data; assert the property."""
    ctx = make_ctx(
        valkey=FuzzValkey(value, wrong, score),
        http=FuzzHttp(payload, text),
        instruments=PAIRS,
        flat_grace_seconds=0,
    )

    async def every_check() -> None:
        for check in CHECKS:
            outcome = await run_check(check, ctx)
            assert outcome.reason is not Reason.INTERNAL_ERROR, (check.name, outcome.summary)
            # Bounded cardinality: whatever the wire says, a label value is a configured
            # instrument, a check name or a closed vocabulary's word, never wire data.
            for reading in outcome.readings:
                assert set(reading.labels) <= LABEL_VALUES, (check.name, reading)
            for item in outcome.freshness:
                assert item.instrument in ("", *PAIRS), (check.name, item)
            if check.name in UNALERTED:  # they have no alert because they cannot fail
                assert outcome.status is not Status.FAIL, (check.name, outcome.summary)

    asyncio.run(every_check())


FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(
    payload=json_values,
    text=metric_lines,
    value=valkey_values,
    wrong=st.booleans(),
    score=st.floats(allow_nan=True) | st.integers(-(10**20), 10**20),
)
def test_no_stack_data_crashes_a_check(
    payload: Any, text: str, value: bytes | None, wrong: bool, score: Any
) -> None:
    """Arbitrary JSON, Valkey values, scores and metric text: closed outcomes only."""
    run_all(payload, text, value, wrong, score)


@FUZZ
@given(
    account=st.fixed_dictionaries(
        {}, optional={"marginUsed": scalars, "marginAvailable": scalars, "balance": scalars}
    ),
    wrapped=st.booleans(),
)
def test_oanda_decimals_never_crash(account: dict[str, Any], wrapped: bool) -> None:
    """OANDA account bodies with any decimal spelling: closed outcomes only."""
    run_all({"account": account} if wrapped else account, "", None, False, 0)


@FUZZ
@given(st.text(max_size=300))
def test_prometheus_text_parser_raises_only_bad_payload(text: str) -> None:
    """The stack's /metrics text parses or is a bad payload, nothing else."""
    from quantops_exporter.sources.errors import BadPayload

    with contextlib.suppress(BadPayload):
        parse_exposition(text)
