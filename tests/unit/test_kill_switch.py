"""The kill switch: parsing both readings and judging them against the policy."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from quantops_exporter.checks.kill_switch import (
    KillSwitchPolicy,
    judge_kill_switch,
    parse_api_answer,
    parse_valkey_value,
    transition,
)
from quantops_exporter.checks.verdict import Measure, Reason, Status
from quantops_exporter.market import FxCalendar, Session
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


def ny(text: str) -> float:
    """Epoch seconds of a New York wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("America/New_York")).timestamp()


INTENDED = (Session.TOKYO, Session.LONDON, Session.NEW_YORK)


@pytest.mark.parametrize(
    ("moment", "window"),
    [
        ("2026-11-27 16:50", None),  # Friday before the close: OFF expected
        ("2026-11-27 17:05", "just after the close"),
        ("2026-11-27 17:20", None),  # closed: ON expected
        ("2026-11-28 12:00", None),  # Saturday
        ("2026-11-29 17:05", "market open, no intended session yet"),  # Sunday open, pre-Tokyo
        ("2026-11-29 19:10", "warm-up after the first intended session opened"),  # Tokyo 09:00
        ("2026-11-29 19:20", None),  # 20 min into Tokyo: OFF expected
        ("2026-03-08 17:05", "market open, no intended session yet"),  # US clocks went forward
        ("2026-03-08 20:10", "warm-up after the first intended session opened"),  # Tokyo, EDT
        # US clocks went back that morning: Tokyo's 09:00 is 19:00 EST, not open yet at 18:10.
        ("2026-11-01 18:10", "market open, no intended session yet"),
    ],
)
def test_transition_windows_follow_the_calendar(moment: str, window: str | None) -> None:
    """Weekend §2: either state is right from the weekly open until an intended session has
    been open for the grace, and for the grace after the close; not otherwise."""
    assert transition(FxCalendar(), ny(moment), 900, INTENDED) == window


def test_during_a_transition_either_state_is_ok_under_the_market_policy_only() -> None:
    """Sunday 17:05 with the switch still ON: ok (it paged every week); always_off still fails."""
    for engaged in (True, False):
        verdict = judge_kill_switch(
            api_engaged=engaged,
            valkey_engaged=engaged,
            valkey_missing=False,
            market_open=True,
            policy=KillSwitchPolicy.MARKET,
            changing="market open, no intended session yet",
        )
        assert verdict.status is Status.OK and "either state is right" in verdict.summary
    strict = judge_kill_switch(
        api_engaged=True,
        valkey_engaged=True,
        valkey_missing=False,
        market_open=True,
        policy=KillSwitchPolicy.ALWAYS_OFF,
        changing="market open, no intended session yet",
    )
    assert strict.status is Status.FAIL
    mismatch = judge_kill_switch(
        api_engaged=True,
        valkey_engaged=False,
        valkey_missing=False,
        market_open=True,
        policy=KillSwitchPolicy.MARKET,
        changing="just after the close",
    )
    assert mismatch.reason is Reason.MISMATCH  # a disagreement is never excused
