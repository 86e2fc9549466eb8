"""Pre-Open Spin-Up §1 and Weekend §2: the kill switch, read from the API and from Valkey."""

from __future__ import annotations

from collections.abc import Iterable

from quantops_exporter.checks.base import CheckContext, from_http, from_valkey, read_both
from quantops_exporter.checks.thresholds import KillSwitchPolicy
from quantops_exporter.checks.verdict import Measure, Reading, Reason, Status, Verdict, fail, ok
from quantops_exporter.market import Calendar, Session
from quantops_exporter.sources.errors import BadPayload
from quantops_exporter.sources.health import Dependency
from quantops_exporter.sources.valkey import KeyRead
from quantops_exporter.urls import endpoint

KILL_SWITCH_KEY = "ops:kill_switch"
KILL_SWITCH_PATH = "/api/kill-switch"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_api_answer(payload: object) -> bool:
    """`{"kill_switch": bool}` → engaged; 0/1 and "true"/"false" spellings are tolerated."""
    if not isinstance(payload, dict) or "kill_switch" not in payload:
        raise BadPayload(f"{KILL_SWITCH_PATH}: expected an object with 'kill_switch'")
    value = payload["kill_switch"]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadPayload(f"{KILL_SWITCH_PATH}: 'kill_switch' is {type(value).__name__}, not a boolean")


def parse_valkey_value(read: KeyRead) -> bool:
    """`ops:kill_switch`: "0"/"false" is off; anything else, or a missing key, is engaged.

    That is the stack's own rule (sep-stack-contract.md §1.6): it falls back to engaged.
    """
    if read.wrong_type:
        raise BadPayload(f"{KILL_SWITCH_KEY} is not a STRING")
    if read.missing:
        return True
    text = read.value.decode("utf-8", "replace") if isinstance(read.value, bytes) else read.value
    return str(text).strip().lower() not in ("0", "false")


def judge_kill_switch(
    *,
    api_engaged: bool,
    valkey_engaged: bool,
    valkey_missing: bool,
    market_open: bool,
    policy: KillSwitchPolicy,
    changing: str | None = None,
) -> Verdict:
    """Compare both readings with each other and with what the policy expects now.

    `changing` names a transition during which either state is right under the `market`
    policy (see `transition`); None outside them."""
    readings = (
        Reading(Measure.KILL_SWITCH_ENGAGED, float(api_engaged), ("api",)),
        Reading(Measure.KILL_SWITCH_ENGAGED, float(valkey_engaged), ("valkey",)),
    )
    observations = {
        "api_engaged": api_engaged,
        "valkey_engaged": valkey_engaged,
        "valkey_key_missing": valkey_missing,
        "market_open": market_open,
        "policy": policy.value,
    }
    state = "engaged" if api_engaged else "off"
    if api_engaged != valkey_engaged:
        missing_note = " (key missing: the stack falls back to engaged)" if valkey_missing else ""
        return fail(
            Reason.MISMATCH,
            f"API says {'engaged' if api_engaged else 'off'} but {KILL_SWITCH_KEY} says "
            f"{'engaged' if valkey_engaged else 'off'}{missing_note}; check KILL_SWITCH_FORCE_ENV",
            readings=readings,
            observations=observations,
        )
    expected: bool | None
    if policy is KillSwitchPolicy.MARKET and changing is not None:
        return ok(
            f"kill switch {state} ({changing}: either state is right)",
            readings=readings,
            observations=observations | {"transition": changing},
        )
    if policy is KillSwitchPolicy.MARKET:
        expected = not market_open
    elif policy is KillSwitchPolicy.ALWAYS_OFF:
        expected = False
    else:
        expected = None
    if expected is None or expected == api_engaged:
        why = "market open" if market_open else "market closed"
        return ok(
            f"kill switch {state} ({why}, policy {policy})",
            readings=readings,
            observations=observations,
        )
    if api_engaged:
        when = (
            "while the market is open"
            if policy is KillSwitchPolicy.MARKET
            else f"(policy {policy} expects it off at all times)"
        )
        summary = f"kill switch engaged {when}: no new entries will be placed"
    else:
        summary = (
            "kill switch off while the market is closed: the runbook leaves it ON until "
            "the first session opens and freshness checks pass"
        )
    return Verdict(
        Status.FAIL, Reason.UNEXPECTED_VALUE, summary, readings=readings, observations=observations
    )


def transition(
    calendar: Calendar, at: float, grace: float, intended: Iterable[Session]
) -> str | None:
    """Whether `at` falls in a time the runbook lets the switch be either ON or OFF, and which:

    - after the weekly open, until an intended session opens (Weekend §2: leave it ON until the
      first session opens and freshness checks pass), and for `grace` after that session
      opened, for the pre-open checks and the operator's hand;
    - for `grace` after the market closes (the switch goes ON, but not at 17:00:00 sharp).
    """
    intended = frozenset(intended)
    if not calendar.is_open(at):
        return "just after the close" if calendar.is_open(at - grace) else None
    if not calendar.open_sessions(at) & intended:
        return "market open, no intended session yet"
    earlier = at - grace
    if not calendar.is_open(earlier) or not calendar.open_sessions(earlier) & intended:
        return "warm-up after the first intended session opened"
    return None


async def check_kill_switch(ctx: CheckContext) -> Verdict:
    """`GET /api/kill-switch` and `ops:kill_switch` agree and match the policy for now."""
    url = endpoint(ctx.api_url, KILL_SWITCH_PATH)
    payload, read = await read_both(
        ctx.http.get_json(Dependency.API, url), ctx.valkey.get(KILL_SWITCH_KEY)
    )
    with from_http(Dependency.API, url):
        api_engaged = parse_api_answer(payload)
    with from_valkey(KILL_SWITCH_KEY):
        valkey_engaged = parse_valkey_value(read)
    now, t = ctx.clock(), ctx.thresholds
    return judge_kill_switch(
        api_engaged=api_engaged,
        valkey_engaged=valkey_engaged,
        valkey_missing=read.missing,
        market_open=ctx.calendar.is_open(now),
        policy=t.kill_switch_policy,
        changing=transition(ctx.calendar, now, t.kill_switch_grace_seconds, t.expected_sessions),
    )
