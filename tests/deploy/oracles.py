"""Oracles for the deploy tests: GitHub's heading anchors and the dashboard's queries."""

from __future__ import annotations

import re

from quantops_exporter.deploykit.dashboard import PANELS


def github_slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def panel_queries() -> list[str]:
    """Every PromQL expression on the dashboard (the e2e test runs each one)."""
    return [expr for _t, _k, targets, *_ in PANELS for expr, _legend in targets]
