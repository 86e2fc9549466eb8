"""Recovery §3, sized: how much margin to release to bring utilisation back under the cap.

Utilisation is marginUsed / (marginUsed + marginAvailable) (sep-stack-contract.md §6). OANDA's
marginAvailable is NAV - marginUsed, so the denominator is the NAV. Closing (part of) a position
moves the margin it used into marginAvailable and leaves their sum alone (the NAV moves with
prices, not with closing): releasing r gives (used - r) / (used + available), and a target t is
reached at r = used - t x (used + available). Holding `available` fixed instead would overstate
it (at 40,000 used / 60,000 available: 14,286 rather than 10,000 to reach 0.30).

The runbook's step: "Close positions with a ≤3% buffer until utilisation < 0.30", so two
figures: just below MARGIN_HYST_HIGH, and three points under it. The exporter says; it never
acts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from quantops_exporter.checks.verdict import Measure, Reading

RECOVERY_BUFFER = 0.03  # Recovery §3: "a <=3% buffer"


class Target(StrEnum):
    """Where the release takes utilisation: the `target` label of the gauge."""

    BELOW_CAP = "below_cap"  # just under MARGIN_HYST_HIGH ("until utilisation < 0.30")
    BUFFER = "buffer"  # MARGIN_HYST_HIGH - 0.03, the runbook's <=3% buffer


@dataclass(frozen=True, slots=True)
class Margin:
    """The account's margins, in its currency."""

    used: float
    available: float

    @property
    def ratio(self) -> float:
        """Utilisation: used / (used + available); 0 with no margin at all."""
        total = self.used + self.available
        return 0.0 if total == 0 else self.used / total


def targets(high: float) -> dict[Target, float]:
    """The utilisations the two figures aim at, for MARGIN_HYST_HIGH `high`."""
    return {Target.BELOW_CAP: high, Target.BUFFER: max(0.0, high - RECOVERY_BUFFER)}


def to_release(margin: Margin, target: float) -> float:
    """Margin to release so that utilisation is `target` (0 when it is already at or under)."""
    return max(0.0, margin.used - target * (margin.used + margin.available))


def release_readings(margin: Margin, high: float) -> tuple[Reading, ...]:
    """runbook_recovery_margin_to_release{target}: 0 while within the cap."""
    return tuple(
        Reading(Measure.RECOVERY_MARGIN_TO_RELEASE, to_release(margin, level), (target.value,))
        for target, level in targets(high).items()
    )


def amount(value: float) -> str:
    """A currency amount as an operator reads it, rounded up to a whole unit: `13,000`."""
    return f"{math.ceil(value - 1e-9):,}"


def sizing(margin: Margin, high: float) -> str:
    """The sentence the summaries carry when utilisation is at or above `high`."""
    levels = targets(high)
    below = to_release(margin, levels[Target.BELOW_CAP])
    buffered = to_release(margin, levels[Target.BUFFER])
    return (
        f"release more than {amount(below)} of margin (used {amount(margin.used)} of "
        f"{amount(margin.used + margin.available)}) to get below {high:.2f}, "
        f"{amount(buffered)} to reach {levels[Target.BUFFER]:.2f} (the runbook's <=3% buffer)"
    )


@dataclass(frozen=True, slots=True)
class Position:
    """An open position's instrument and the margin it uses."""

    instrument: str
    margin: float


def over_cap(positions: Sequence[Position], cap: float) -> str:
    """Which positions use more margin than their per-position cap, the largest first."""
    over = sorted((p for p in positions if p.margin > cap), key=lambda p: -p.margin)
    if not over:
        return f"no position is over its per-position cap {amount(cap)}"
    listed = ", ".join(f"{p.instrument} {amount(p.margin)}" for p in over[:5])
    more = f" and {len(over) - 5} more" if len(over) > 5 else ""
    return f"over their per-position cap {amount(cap)}: {listed}{more}"
