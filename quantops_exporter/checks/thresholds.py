"""The stack's knobs the checks judge against, declared once.

`config.Settings` inherits these fields, so each knob is read from the environment by the name the
stack itself uses (`FRESH_MAX_WS_AGE_SEC`, …) and reaches the checks as this frozen model, closed
vocabularies kept as enums.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)
from pydantic_settings import NoDecode

from quantops_exporter.market import Session

INSTRUMENT = re.compile(r"^[A-Z0-9]{2,10}_[A-Z0-9]{2,10}$")
Fraction = Annotated[float, Field(ge=0, le=1)]


class KillSwitchPolicy(StrEnum):
    """What state the switch should be in (QUANTOPS_KILL_SWITCH_POLICY)."""

    MARKET = "market"  # off while the market is open, on while it is closed (runbook Weekend §2)
    ALWAYS_OFF = "always_off"  # off at all times: a 24/7 stack
    IGNORE = "ignore"  # report the state and any disagreement, expect nothing


class SignalTimestampSource(StrEnum):
    """Where a signal index's newest timestamp is read from."""

    AUTO = "auto"  # the member's ts_ns suffix when it parses, else the score
    MEMBER = "member"
    SCORE = "score"


class WeightsScale(StrEnum):
    """How allocation weights are expressed (the stack's docs disagree)."""

    AUTO = "auto"  # normalised when they sum to 1 (±0.01), else fractions of the budget
    BUDGET = "budget"  # fractions of the budget: their sum is the total allocation
    NORMALIZED = "normalized"  # shares summing to 1 of RISK_ALLOC_TARGET_PCT


def split_csv(value: object) -> object:
    """`"a, b,,c"` → `["a", "b", "c"]`; anything else unchanged (pydantic validates it)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


PREOPEN_READY_WITHIN_SECONDS = 300.0  # the runbook's Pre-Open §6: "if still flat after 5 minutes"


class Thresholds(BaseModel):
    """The stack's knobs, by the stack's names (sep-stack-contract.md §4), and the exporter's
    own judgement settings; seconds unless named otherwise."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    fresh_max_ws_age_sec: PositiveFloat = Field(30.0, validation_alias="FRESH_MAX_WS_AGE_SEC")
    fresh_max_signal_age_sec: PositiveFloat = Field(
        300.0, validation_alias="FRESH_MAX_SIGNAL_AGE_SEC"
    )
    gates_blob_max_age_sec: PositiveFloat = Field(180.0, validation_alias="GATES_BLOB_MAX_AGE_SEC")
    alloc_top_k: PositiveInt = Field(3, validation_alias="ALLOC_TOP_K")
    alloc_interval_sec: PositiveFloat = Field(60.0, validation_alias="ALLOC_INTERVAL_SEC")
    echo_min_repetitions: NonNegativeFloat = Field(3, validation_alias="ECHO_MIN_REPETITIONS")
    echo_hazard_max: Fraction = Field(0.70, validation_alias="ECHO_HAZARD_MAX")
    margin_hyst_high: Fraction = Field(0.30, validation_alias="MARGIN_HYST_HIGH")
    pm_max_per_pos_pct: Fraction = Field(0.10, validation_alias="PM_MAX_PER_POS_PCT")
    risk_alloc_target_pct: Fraction = Field(0.30, validation_alias="RISK_ALLOC_TARGET_PCT")
    max_spread_bps: PositiveFloat = Field(5.0, validation_alias="MAX_SPREAD_BPS")
    session_exit_minutes: NonNegativeFloat = Field(5.0, validation_alias="SESSION_EXIT_MINUTES")

    kill_switch_policy: KillSwitchPolicy = Field(
        KillSwitchPolicy.MARKET, validation_alias="QUANTOPS_KILL_SWITCH_POLICY"
    )
    max_clock_skew_seconds: PositiveFloat = Field(
        5.0, validation_alias="QUANTOPS_MAX_CLOCK_SKEW_SECONDS"
    )
    manifold_ts_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        ("ts_ms", "ts", "t", "timestamp", "time"), validation_alias="QUANTOPS_MANIFOLD_TS_FIELDS"
    )
    manifold_ttl_seconds: PositiveFloat = Field(
        300.0, validation_alias="QUANTOPS_MANIFOLD_TTL_SECONDS"
    )
    signal_ts_source: SignalTimestampSource = Field(
        SignalTimestampSource.AUTO, validation_alias="QUANTOPS_SIGNAL_TS_SOURCE"
    )
    min_eligible: NonNegativeInt = Field(3, validation_alias="QUANTOPS_MIN_ELIGIBLE")
    expected_sessions: Annotated[tuple[Session, ...], NoDecode] = Field(
        (Session.TOKYO, Session.LONDON, Session.NEW_YORK),
        validation_alias="QUANTOPS_EXPECTED_SESSIONS",
    )
    allocation_weights_scale: WeightsScale = Field(
        WeightsScale.AUTO, validation_alias="QUANTOPS_ALLOCATION_WEIGHTS_SCALE"
    )
    candles_instrument: str = Field("EUR_USD", validation_alias="QUANTOPS_CANDLES_INSTRUMENT")
    candles_limit: PositiveInt = Field(120, validation_alias="QUANTOPS_CANDLES_LIMIT")
    candles_max_age_seconds: PositiveFloat = Field(
        180.0, validation_alias="QUANTOPS_CANDLES_MAX_AGE_SECONDS"
    )
    allocator_max_age_seconds: PositiveFloat = Field(
        180.0, validation_alias="QUANTOPS_ALLOCATOR_MAX_AGE_SECONDS"
    )
    flat_grace_seconds: NonNegativeFloat = Field(
        300.0, validation_alias="QUANTOPS_FLAT_GRACE_SECONDS"
    )
    kill_switch_grace_seconds: NonNegativeFloat = Field(
        900.0, validation_alias="QUANTOPS_KILL_SWITCH_GRACE_SECONDS"
    )
    # The warm-up after the market opens: the checks that wait for the stack's writers to resume
    # (Check.warms_up) are not expected until then, and the generated SepRunbookPreOpenNotReady
    # pages when the Pre-Open Spin-Up is still not green at its end (the runbook's "if still
    # flat after 5 minutes"); that alert watches the first hour only, so at most half of it.
    preopen_ready_within_seconds: float = Field(
        PREOPEN_READY_WITHIN_SECONDS,
        ge=60,
        le=1800,
        validation_alias="QUANTOPS_PREOPEN_READY_WITHIN_SECONDS",
    )

    @field_validator(
        "kill_switch_policy", "signal_ts_source", "allocation_weights_scale", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("manifold_ts_fields", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return split_csv(value)

    @field_validator("manifold_ts_fields")
    @classmethod
    def _fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one field name is needed, e.g. ts_ms,ts")
        return value

    @field_validator("expected_sessions", mode="before")
    @classmethod
    def _sessions(cls, value: object) -> object:
        split = split_csv(value)
        if isinstance(split, list):
            return [item.lower().replace(" ", "_") for item in split]
        return split

    @field_validator("candles_instrument")
    @classmethod
    def _candles_instrument(cls, value: str) -> str:
        if not INSTRUMENT.match(value.upper()):
            raise ValueError("expected an instrument like EUR_USD")
        return value.upper()
