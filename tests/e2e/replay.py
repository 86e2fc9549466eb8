"""Replaying what the daemon exported against the shipped alert rules with `promtool test rules`.

The scrapes become promtool `input_series` on a one-second grid whose zero is the moment the
replay started (so `time()` in the rules is that moment plus the grid's seconds): every sample
at the second it was scraped, then the last scrape held for HOLD seconds, one sample per
HELD_EVERY (the shipped scrape interval), the way the issue replays an exposition ("held for 30
minutes"). Unix timestamps (`*_timestamp_seconds`) are rebased to the grid's zero. While held,
what keeps running keeps moving: a check's last run advances on its interval (the daemon keeps
scheduling it), a source timestamp that moved during the window advances with the clock (its
writer keeps writing); a timestamp that did not move stays (a frozen writer stays frozen),
every other value stays as last scraped, counters included.

Only series the rule file names are kept (the rest cannot change what fires), with the `job`
and `instance` labels Prometheus adds, and `up` 1 at every scrape.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

JOB = "quantops-exporter"
HOLD = 35 * 60  # seconds the last scrape is held for
HELD_EVERY = 15  # seconds between held samples (deploy/prometheus/prometheus.yml scrape_interval)
EVALUATION_INTERVAL = "15s"  # as deploy/prometheus/prometheus.yml
STEP = 15  # seconds between rule evaluations, so between the dense checks
LAST_RUN = "runbook_check_last_run_timestamp_seconds"
INTERVAL = "runbook_check_interval_seconds"
SOURCE_UPDATE = "runbook_freshness_last_update_timestamp_seconds"
FIRING = 'count by (alertname, check) (ALERTS{alertstate="firing"})'
# Every label of every firing alert; compared with a sample that never exists, so promtool
# always prints what it got: the probe that reports what fired, whether the test passed or not.
PROBE = 'count without (instance, job, alertstate) (ALERTS{alertstate="firing"})'

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


@dataclass(frozen=True, slots=True)
class Scrape:
    """One /metrics body and the second of the replay grid it was taken at."""

    second: int
    samples: Mapping[SeriesKey, float]


@dataclass(frozen=True, slots=True, order=True)
class Alert:
    """An alert promtool found firing: its name and check label (its identity here), and its
    other labels where promtool showed them."""

    name: str
    check: str
    labels: Labels = field(default=(), compare=False)

    def __str__(self) -> str:
        shown = ", ".join(
            f"{k}={v}"
            for k, v in self.labels
            if k in ("severity", "dependency", "section", "source")
        )
        return f"{self.name}{{check={self.check}{', ' + shown if shown else ''}}}"


def rule_identifiers(rules_text: str) -> frozenset[str]:
    """Every metric-like name the rule file mentions (expressions and annotation queries)."""
    return frozenset(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rules_text))


def alert_names(rules: Path) -> tuple[str, ...]:
    """The alerts the rule file defines, in file order."""
    document = yaml.safe_load(rules.read_text())
    return tuple(
        rule["alert"] for group in document["groups"] for rule in group["rules"] if "alert" in rule
    )


def parse_exposition(text: str, keep: frozenset[str]) -> dict[SeriesKey, float]:
    """The samples of one /metrics body whose name the rules mention."""
    samples: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in keep:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = float(sample.value)
    return samples


def _is_timestamp(name: str) -> bool:
    return name.endswith(("_timestamp_seconds", "_time_seconds"))


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(round(value, 6))


def _selector(name: str, labels: Labels) -> str:
    inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in labels)
    return f"{name}{{{inner}}}"


def _gaps(tokens: list[str], gap: int) -> None:
    if gap > 0:
        tokens.append(f"_x{gap}")


def input_series(scrapes: Sequence[Scrape], origin: float, instance: str) -> list[dict[str, str]]:
    """promtool input_series for `scrapes` (taken `origin` + second), then the hold."""
    if not scrapes:
        return []
    last = scrapes[-1]
    keys = sorted({key for scrape in scrapes for key in scrape.samples})
    extra = (("instance", instance), ("job", JOB))
    held_at = list(range(last.second + HELD_EVERY, last.second + HOLD + 1, HELD_EVERY))
    series = []
    for key in keys:
        name, labels = key
        rebase = origin if _is_timestamp(name) else 0.0
        tokens: list[str] = []
        cursor = 0  # the next grid second without a token
        present = False
        seen: list[float] = []
        for scrape in scrapes:
            value = scrape.samples.get(key)
            if value is None and not present:
                continue
            _gaps(tokens, scrape.second - cursor)
            if value is None:
                tokens.append("stale")  # gone from the exposition: Prometheus marks it stale
                present = False
            else:
                tokens.append(_number(value - rebase))
                seen.append(value - rebase)
                present = True
            cursor = scrape.second + 1
        if present:
            moves = _hold(key, seen, last)
            for second in held_at:
                _gaps(tokens, second - cursor)
                tokens.append(_number(moves(second)))
                cursor = second + 1
        merged = dict(labels) | dict(extra)
        series.append(
            {"series": _selector(name, tuple(sorted(merged.items()))), "values": " ".join(tokens)}
        )
    up = " ".join(
        [*_up_tokens([s.second for s in scrapes]), *_up_tokens(held_at, start=last.second + 1)]
    )
    series.append({"series": _selector("up", tuple(sorted(extra))), "values": up})
    return series


def _up_tokens(seconds: Iterable[int], start: int = 0) -> list[str]:
    tokens: list[str] = []
    cursor = start
    for second in seconds:
        _gaps(tokens, second - cursor)
        tokens.append("1")
        cursor = second + 1
    return tokens


def _hold(key: SeriesKey, seen: list[float], last: Scrape) -> Any:
    """How a series moves while the last scrape is held: a function of the grid second."""
    name, labels = key
    value = seen[-1]
    if name == LAST_RUN:  # the daemon keeps running the check on its interval
        interval = last.samples.get((INTERVAL, labels))
        if interval:
            step = float(interval)
            return lambda second: value + step * max(0, math.floor((second - value) / step))
    if name == SOURCE_UPDATE and len(set(seen)) > 1:  # the writer kept writing: still does
        return lambda second: value + (second - last.second)
    return lambda _second: value


def steps(until: int, every: int = STEP) -> list[int]:
    """Every rule evaluation's second of the grid, up to `until` (the dense checks)."""
    return list(range(every, until + 1, every))


def promtool_tests(
    rules: Path,
    name: str,
    series: list[dict[str, str]],
    alerts: Sequence[str],
    eval_times: Sequence[str],
    dense: Sequence[int],
    expected: tuple[str, str] | None,
    expected_from: Sequence[str],
) -> dict[str, Any]:
    """A promtool test: no alert fires (an `alert_rule_test` expecting none for every alert at
    each of `eval_times`, and no ALERTS firing at any of the `dense` seconds), except
    `expected` (alertname, check), which must be the only one firing at `expected_from`."""
    quiet = [a for a in alerts if expected is None or a != expected[0]]
    rule_tests = [
        {"alertname": alert, "eval_time": at, "exp_alerts": []}
        for at in eval_times
        for alert in quiet
    ]
    others = FIRING
    if expected is not None:
        alertname, check = expected
        mine = f'ALERTS{{alertname="{alertname}", check="{check}"}}'
        others = (
            'count by (alertname, check) (ALERTS{alertstate="firing"} '
            f"unless on (alertname, check) {mine})"
        )
    expr_tests: list[dict[str, Any]] = [
        {"expr": others, "eval_time": f"{second}s", "exp_samples": []} for second in dense
    ]
    if expected is not None:
        expr_tests += [
            {
                "expr": FIRING,
                "eval_time": at,
                "exp_samples": [
                    {"labels": f'{{alertname="{alertname}", check="{check}"}}', "value": 1}
                ],
            }
            for at in expected_from
        ]
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": EVALUATION_INTERVAL,
        "tests": [
            {
                "name": name,
                "interval": "1s",
                "input_series": series,
                "alert_rule_test": rule_tests,
                "promql_expr_test": expr_tests,
            }
        ],
    }


def probe_tests(
    rules: Path, name: str, series: list[dict[str, str]], dense: Sequence[int]
) -> dict[str, Any]:
    """A promtool test that always fails, printing every alert firing at each `dense` second."""
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": EVALUATION_INTERVAL,
        "tests": [
            {
                "name": f"{name} (probe)",
                "interval": "1s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": PROBE,
                        "eval_time": f"{second}s",
                        "exp_samples": [{"labels": '{probe="none"}', "value": 0}],
                    }
                    for second in dense
                ],
            }
        ],
    }


def seconds_of(duration: str) -> int:
    """Seconds in a Go duration as promtool prints it (`1h2m3s`, `15m`, `45s`, `0s`)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return round(
        sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(h|m(?!s)|s)", duration))
    )


def spans(fired: Mapping[int, set[Alert]], every: int = STEP) -> dict[Alert, list[tuple[int, int]]]:
    """When each alert fired: runs of consecutive probed seconds, as (first, last)."""
    runs: dict[Alert, list[tuple[int, int]]] = {}
    for second in sorted(fired):
        for alert in fired[second]:
            found = runs.setdefault(alert, [])
            if found and second - found[-1][1] <= every:
                found[-1] = (found[-1][0], second)
            else:
                found.append((second, second))
    return runs


_EXPR_BLOCK = re.compile(r"expr: .*, time: (\S+),")
_GOT_SAMPLE = re.compile(r"\{([^}]*)\} [0-9.E+-]+")
_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def firing(output: str) -> dict[int, set[Alert]]:
    """The alerts a probe (`probe_tests`) printed, by the second of the grid."""
    found: dict[int, set[Alert]] = {}
    at: int | None = None
    for line in output.splitlines():
        if block := _EXPR_BLOCK.search(line):
            at = seconds_of(block.group(1))
            found.setdefault(at, set())
            continue
        if at is None or not line.strip().startswith("got:"):
            continue
        for sample in _GOT_SAMPLE.finditer(line):
            pairs = dict(_PAIR.findall(sample.group(1)))
            if "alertname" in pairs:
                labels = tuple(sorted(pairs.items()))
                found[at].add(Alert(pairs["alertname"], pairs.get("check", ""), labels))
    return found
