"""Durations for people: one spelling everywhere a summary or page shows an age or a span."""

from __future__ import annotations

import re

# A count of seconds written as `840s` or `12.5s`, standing alone (not `840ms`, not `x840s`).
_SECONDS = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)s\b")


def format_duration(seconds: float) -> str:
    """`45s`, `14m`, `3.2h`, `5d`: seconds below two minutes, then minutes, hours, days."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.0f}d"


def humanize_durations(text: str) -> str:
    """`text` with every count of seconds of two minutes or more in format_duration's spelling:
    "flat for 840s (max 300s)" reads "flat for 14m (max 5m)"; "within 30s" is left alone."""

    def spell(match: re.Match[str]) -> str:
        seconds = float(match[1])
        return match[0] if seconds < 120 else format_duration(seconds)

    return _SECONDS.sub(spell, text)


def format_countdown(seconds: float) -> str:
    """`1 h 12 min`, `2 d 4 h`, `3 h`, `45 min`, `under 1 min`: the time left, rounded down to
    whole units, so a countdown never says an event is further off than it is."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "under 1 min"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"
