"""The `check` command's report for people: grouped like the runbook, with progress on a TTY."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from quantops_exporter.checks.base import Check, Outcome
from quantops_exporter.checks.catalog import Section
from quantops_exporter.checks.verdict import MARKS, Status

_COLOURS = {Status.OK: "32", Status.FAIL: "31", Status.ERROR: "33", Status.SKIPPED: "90"}


class Progress:
    """`running checks… 12/22` on stderr while checks run, on a terminal only."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.count, self.enabled = total, 0, enabled
        self._show()

    def done(self, _outcome: Outcome) -> None:
        """One more check finished."""
        self.count += 1
        self._show()

    def finish(self) -> None:
        """Erase the indicator."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _show(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\rrunning checks\u2026 {self.count}/{self.total}")
            sys.stderr.flush()


def summary_line(results: Sequence[tuple[Check, Outcome]]) -> str:
    """`22 checks: 18 ok, 2 fail, 1 error, 1 skipped` (zero counts left out)."""
    counts = {status: 0 for status in Status}
    for _check, outcome in results:
        counts[outcome.status] += 1
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    return f"{len(results)} checks: {', '.join(parts) or 'none run'}"


def step_of(check: Check, section: Section) -> float:
    """Where `check` stands in `section`'s checklist: a precondition first, then by the step
    number its runbook reference gives there (`Daily Ops Snapshot §4`, `Troubleshooting step
    3`), a reference to the whole procedure last."""
    for step in check.runbook.split(";"):
        step = step.strip()
        if not step.startswith(section.value):
            continue
        if "precondition" in step:
            return 0.0
        number = re.search(r"(?:§|step )(\d+)", step)
        return float(number[1]) if number else float("inf")
    return float("inf")


def render_table(
    results: Sequence[tuple[Check, Outcome]],
    *,
    colour: bool = False,
    section: Section | None = None,
) -> str:
    """The report, grouped by runbook section like the runbook itself: a mark per step,
    status/reason when it is not ok, the summary, and the runbook reference. For one `section`
    (`check --section`), every row under its heading, in its steps' order."""
    if section is not None:
        results = sorted(results, key=lambda pair: step_of(pair[0], section))
    lines: list[str] = []
    heading = None
    for check, outcome in results:
        group = section or check.section
        if group != heading:
            heading = group
            lines.append(("\n" if lines else "") + heading)
        verdict = "" if outcome.status is Status.OK else f"{outcome.status}/{outcome.reason}  "
        mark = MARKS[outcome.status]
        if colour:
            mark = f"\033[{_COLOURS[outcome.status]}m{mark}\033[0m"
        lines.append(f"  {mark} {check.name:<24} {verdict}{outcome.summary}  [{check.runbook}]")
    return "\n".join(lines)
