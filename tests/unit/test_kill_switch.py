"""The kill switch: parsing both readings and judging them against the policy."""

from __future__ import annotations

import pytest

from quantops_exporter.checks.base import Measure, Reason, Status
from quantops_exporter.checks.kill_switch import (
    KillSwitchPolicy,
    judge_kill_switch,
    parse_api_answer,
    parse_valkey_value,
)
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.valkey import KeyRead


@pytest.mark.parametrize(
    ("payload", "engaged"),
    [
        ({"kill_switch": False}, False),
        ({"kill_switch": True}, True),
        ({"kill_switch": 0}, False),
        ({"kill_switch": "true"}, True),
        ({"kill_switch": "False"}, False),
    ],
)
def test_api_answer_spellings(payload: object, engaged: bool) -> None:
    """The boolean and its common spellings are read."""
    assert parse_api_answer(payload) is engaged


@pytest.mark.parametrize(
    "payload", [[], "false", {"enabled": False}, {"kill_switch": None}, {"kill_switch": 2}]
)
def test_api_answer_other_shapes_are_bad_payload(payload: object) -> None:
    """Anything else is a bad payload, not a guess."""
    with pytest.raises(BadPayload):
        parse_api_answer(payload)


@pytest.mark.parametrize(
    ("value", "engaged"),
    [(b"0", False), (b"false", False), (b"False", False), (b"1", True), (b"halt", True)],
)
def test_valkey_value_follows_the_stack_rule(value: bytes, engaged: bool) -> None:
    """Only 0/false mean off; anything else is engaged, as the stack reads it."""
    assert parse_valkey_value(KeyRead("ops:kill_switch", value)) is engaged


def test_missing_valkey_key_reads_engaged() -> None:
    """The stack falls back to engaged when the key is missing."""
    assert parse_valkey_value(KeyRead("ops:kill_switch", None)) is True


def judge(api: bool, valkey: bool, market_open: bool, policy: str = "market"):  # type: ignore[no-untyped-def]
    """Judge with the key present."""
    return judge_kill_switch(
        api_engaged=api,
        valkey_engaged=valkey,
        valkey_missing=False,
        market_open=market_open,
        policy=KillSwitchPolicy(policy),
    )


@pytest.mark.parametrize(
    ("api", "market_open", "policy", "status"),
    [
        (False, True, "market", Status.OK),
        (True, True, "market", Status.FAIL),
        (True, False, "market", Status.OK),  # Weekend §2: leave it ON while closed
        (False, False, "market", Status.FAIL),
        (False, False, "always_off", Status.OK),
        (True, False, "always_off", Status.FAIL),
        (True, True, "ignore", Status.OK),
    ],
)
def test_policy_matrix(api: bool, market_open: bool, policy: str, status: Status) -> None:
    """What state is expected depends on the policy and whether the market is open."""
    verdict = judge(api, api, market_open, policy)
    assert verdict.status is status
    if status is Status.FAIL:
        assert verdict.reason is Reason.UNEXPECTED_VALUE


def test_disagreement_is_a_mismatch_whatever_the_policy() -> None:
    """API and Valkey disagreeing fails with mismatch, even under `ignore`."""
    verdict = judge(False, True, True, "ignore")
    assert (verdict.status, verdict.reason) == (Status.FAIL, Reason.MISMATCH)
    assert "KILL_SWITCH_FORCE_ENV" in verdict.summary


def test_readings_report_both_sources() -> None:
    """The engaged gauge is reported per source."""
    readings = judge(False, True, True).readings
    assert {(r.labels, r.value) for r in readings if r.measure is Measure.KILL_SWITCH_ENGAGED} == {
        (("api",), 0.0),
        (("valkey",), 1.0),
    }
