"""Durations for people: one spelling everywhere a summary or page shows an age or a span."""

from __future__ import annotations


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
