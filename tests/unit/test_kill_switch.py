"""The kill switch: parsing both readings and judging them against the policy."""

from __future__ import annotations

import pytest

from quantops_exporter.checks.kill_switch import (
    KillSwitchPolicy,
    judge_kill_switch,
    parse_api_answer,
    parse_valkey_value,
)
from quantops_exporter.checks.verdict import Measure, Reason, Status
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
    ("api", "market_open", "policy", "status", "summary"),
    [
        (False, True, "market", Status.OK, "kill switch off (market open, policy market)"),
        (
            True,
            True,
            "market",
            Status.FAIL,
            "kill switch engaged while the market is open: no new entries will be placed",
        ),
        # Weekend §2: leave it ON while closed
        (True, False, "market", Status.OK, "kill switch engaged (market closed, policy market)"),
        (
            False,
            False,
            "market",
            Status.FAIL,
            "kill switch off while the market is closed: the runbook leaves it ON until the "
            "first session opens and freshness checks pass",
        ),
        (
            False,
            False,
            "always_off",
            Status.OK,
            "kill switch off (market closed, policy always_off)",
        ),
        (
            True,
            False,
            "always_off",
            Status.FAIL,
            "kill switch engaged (policy always_off expects it off at all times): no new entries "
            "will be placed",
        ),
        (True, True, "ignore", Status.OK, "kill switch engaged (market open, policy ignore)"),
    ],
)
def test_policy_matrix(
    api: bool, market_open: bool, policy: str, status: Status, summary: str
) -> None:
    """What state is expected depends on the policy and whether the market is open; the summary
    says what was seen and why it is (not) expected, never a market state that is not so."""
    verdict = judge(api, api, market_open, policy)
    assert (verdict.status, verdict.summary) == (status, summary)
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
