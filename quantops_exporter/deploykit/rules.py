"""Alert and recording rules generated from the catalog, so they cannot drift from it.

`python -m quantops_exporter.deploykit` writes them to deploy/prometheus/rules/ (and, as a
PrometheusRule, to deploy/kubernetes/); `--check` fails when the committed files differ.

What the rules promise (the README's "Alerts" section says it per alert):

- **Every target label is kept.** Whatever labels Prometheus attaches (`job`, `stack`, `region`,
  a renamed job), every record and alert carries them; aggregation across replicas removes only
  `instance`; holds and template queries match on all of them (promql.py). No rule names a job:
  an exporter is a target that exported quantops_exporter_build_info.
- **A page states only what a check saw.** A check's alert fires on status `fail` (it read the
  stack and judged it unhealthy), never on `error` (it could not read): read errors surface as one
  `CannotRead` per dependency (or server) the checks could not read, naming what (the endpoint
  or key, the reason) and the checks it blinds.
- **"Down" is sustained.** `runbook_dependency_up` is 1 while any endpoint of a dependency
  answered its latest request: one failing endpoint is not an outage (its checks' CannotRead
  names it). Down means no successful request over a window (`max_over_time`), for
  `DependencyDown` and for holding check alerts back alike; a dependency that keeps changing
  state pages once as `DependencyFlapping`. Dependencies one server serves (the backend's API
  and its /metrics, by default) page once, as that server.
- **One page per cause.** A consequence is held while its cause's check fails (`HOLDS`): the
  no-positions diagnosis behind the check of its first failing step, margin behind exposure,
  over-allocation behind exposure, off-Top-K weights behind the Top-K count; a stuck check
  pages once (`CheckStuck`), not also as tickets.
- **One stack, one page.** Alerts about the stack aggregate across replicas (`without
  (instance)`): two exporters scraping one stack are one page per fault (a `stack` target label
  keeps several stacks in one job apart). Alerts about one exporter (down, stuck, missing runs)
  keep its `instance`.
- **Stuck means stuck, not unscraped.** A check's age is taken at the scrape that exported it,
  so the frozen samples of a removed or renamed scrape pool never look stuck (records.py).
- **`for:` follows the configured cadence:** the generator reads the daemon's settings
  (`--env-file`, the environment), so an interval override changes the hold.
- **The open is watched once.** `PreOpenNotReady` pages when the Pre-Open Spin-Up is still not
  green QUANTOPS_PREOPEN_READY_WITHIN_SECONDS after the market opens, within the first hour,
  and only for what no other page covers (a ticket check failing, a check that has not judged
  since the open).
- **The runbook link is the section that explains the alert:** the check's step; the Weekend
  section for the alerts that fire while the market is closed or warming up (the exporter's
  own, the dependencies', the kill switch's) at those times, the Pre-Open Spin-Up otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import (
    CHECKS,
    DEFAULT_RUNBOOK_URL,
    Anchor,
    Section,
    section_checks,
)
from quantops_exporter.checks.diagnosis import PROCEDURE
from quantops_exporter.checks.thresholds import PREOPEN_READY_WITHIN_SECONDS
from quantops_exporter.deploykit.promql import (
    EXPORTER,
    SEL,
    STACK_SUFFIX,
    ignoring,
    listing,
    query,
    regex,
    selecting,
    value,
)
from quantops_exporter.deploykit.records import (
    EXPORTER_UP,
    UNREADABLE,
    down,
    per_exporter,
    per_stack,
)
from quantops_exporter.deploykit.specs import (
    ALERTS,
    DEFAULT_SERVERS,
    DEPENDENCY_DOWN_FOR,
    DEPENDENCY_FLAPPING_FOR,
    FRESHNESS_CHECKS,
    HOLDS,
    PREFIX,
    PREOPEN_RED_FOR,
    PREOPEN_WINDOW_SECONDS,
    STUCK_INTERVALS,
    STUCK_SLACK_SECONDS,
    UNALERTED,
    AlertSpec,
    Hold,
    Server,
    Severity,
    cannot_read_for,
    dependency_sets,
    depends_on,
    duration,
    for_duration,
    paging_checks,
    seconds_of,
    servers_of,
)
from quantops_exporter.sources.health import Dependency

__all__ = [
    "ALERTS",
    "DEFAULT_JOB",
    "DEFAULT_SERVERS",
    "FRESHNESS_CHECKS",
    "HOLDS",
    "PREFIX",
    "PREOPEN_WINDOW_SECONDS",
    "STUCK_INTERVALS",
    "STUCK_SLACK_SECONDS",
    "UNALERTED",
    "AlertSpec",
    "Hold",
    "Server",
    "Severity",
    "build_rules",
    "cannot_read_for",
    "depends_on",
    "duration",
    "for_duration",
    "paging_checks",
    "prometheus_rule",
    "render",
    "runbook_link",
    "seconds_of",
    "servers_of",
]

# The job the shipped scrape configurations give the exporter. The rules never name it.
DEFAULT_JOB = "quantops-exporter"


def runbook_link(base: str, anchor: str, ready_within: float) -> str:
    """`anchor` of the runbook, or its Weekend section while the alert's stack rests: the
    market closed (by the last timestamps its exporters exported), or opened less than
    `ready_within` ago (the warm-up)."""
    resting = query(
        f"(last_over_time(runbook_market_next_open_timestamp_seconds{{{SEL}}}[1h]) < "
        f"last_over_time(runbook_market_next_close_timestamp_seconds{{{SEL}}}[1h])) or "
        f"(time() - last_over_time(runbook_market_last_open_timestamp_seconds{{{SEL}}}[1h]) "
        f"< {ready_within:g})"
    )
    return f"{base}#" + selecting(
        f"{{{{ if query {resting} }}}}{Anchor.WEEKEND.value}{{{{ else }}}}{anchor}{{{{ end }}}}"
    )


def _failing_reason(check: str) -> str:
    promql = (
        f'max by (reason) (runbook_check_failure_reason{{check="{check}",{SEL}}} == 1 and '
        f"{ignoring('reason')} runbook:check_failing == 1)"
    )
    return (
        f"{{{{ with query {query(promql)} }}}}{{{{ . | first | label "
        '"reason" }}{{ else }}unknown{{ end }}'
    )


def _seen_by(check: str) -> str:
    return listing(
        f'runbook:check_failing{{check="{check}",{SEL}}} == 1',
        EXPORTER,
        f"{{{{ $s.Labels.{EXPORTER} }}}}",
    )


def _stack_failing(check: str) -> str:
    return f'stack:runbook_check_failing:max{{check="{check}"}} == 1'


def _cause(hold: Hold) -> str:
    """The condition under which `hold` holds its check's alert (one series per stack)."""
    condition = _stack_failing(hold.cause)
    if hold.step is not None:
        condition += (
            f" and {ignoring('check')} max without ({EXPORTER}, procedure, step) "
            f'(runbook_diagnosis_step{{procedure="{PROCEDURE}",step="{hold.step.value}"}}) == 1'
        )
    if hold.reason is not None:
        condition += (
            f" and {ignoring('check')} max without ({EXPORTER}, check, reason) "
            f'(runbook_check_failure_reason{{check="{hold.check}",reason="{hold.reason.value}"}})'
            " == 1"
        )
    return f"({condition})"


def check_alert(
    check: Check,
    spec: AlertSpec,
    runbook_url: str,
    holds: Sequence[Hold] = HOLDS,
    ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> dict[str, Any]:
    """The alert for one check: an exporter of the stack saw it fail while expected and enabled,
    unless a dependency it reads is down (sustained) or a cause it follows already pages."""
    expr = _stack_failing(check.name)
    if check.dependencies:
        deps = regex(d.value for d in check.dependencies)
        # One outage, one page: DependencyDown speaks for every check behind it.
        expr += (
            f" unless {ignoring('check', 'dependency')} "
            f'(stack:runbook_dependency_down:min{{dependency=~"{deps}"}} == 1)'
        )
    causes = [_cause(h) for h in holds if h.check == check.name]
    if causes:
        expr += f" unless {ignoring('check')} (" + " or ".join(causes) + ")"
    description = (
        f"{spec.summary} ({check.runbook}). Reason: {_failing_reason(check.name)}. "
        f"{spec.remedy} Seen by {_seen_by(check.name)}; the check's summary at /api/v1/checks "
        "says more."
    )
    if spec.value:
        description += f" Current value: {value(spec.value)}."
    link = (
        runbook_link(runbook_url, check.anchor, ready_within)
        if spec.weekend
        else f"{runbook_url}#{check.anchor}"
    )
    return {
        "alert": PREFIX + spec.alert,
        "expr": expr,
        "for": for_duration(check, spec),
        "labels": {
            "severity": spec.severity.value,
            "check": check.name,
            # For Alertmanager's inhibition (deploy/alertmanager): a second line behind `unless`.
            "depends_on": depends_on(check.dependencies),
        },
        "annotations": {
            "summary": spec.summary + STACK_SUFFIX,
            "description": selecting(description),
            "runbook_url": link,
            "severity_reason": spec.why,
        },
    }


def _per_server(record: str, servers: Sequence[Server]) -> str:
    """`record` (per stack and dependency) per server: one series labelled with every
    dependency it serves when all of them are affected, else one per affected dependency."""
    parts = []
    for server in servers:
        members = regex(d.value for d in server)
        if len(server) == 1:
            parts.append(f'{record}{{dependency="{members}"}} == 1')
            continue
        # The whole server: every dependency it serves is affected (not merely the ones seen).
        whole = (
            f'count without (dependency) ({record}{{dependency=~"{members}"}} == 1) '
            f"== {len(server)}"
        )
        parts.append(f'label_replace({whole}, "dependency", "{depends_on(server)}", "", "")')
        parts.append(
            f'({record}{{dependency=~"{members}"}} == 1 unless {ignoring("dependency")} ({whole}))'
        )
    return " or ".join(f"({p})" for p in parts)


def _cannot_read(checks: Sequence[Check], servers: Sequence[Server]) -> str:
    """CannotRead's expression: each dependency (or each server, when every dependency it serves
    is unreadable) that checks blind on every exporter could not read; then each set of several
    dependencies read together by blind checks that name nothing they could not read, while no
    member is unreadable by itself."""
    parts = [_per_server("stack:runbook_dependency_unreadable", servers)]
    for label in dependency_sets(checks):
        if "," not in label:
            continue
        members = [Dependency(name) for name in label.split(",")]
        parts.append(
            "(label_replace(max without (check, depends_on) "
            f'(stack:runbook_check_blind_unlocated:min{{depends_on="{label}"}}), '
            f'"dependency", "{label}", "", "") unless {ignoring("dependency")} '
            f"({down(members)}) unless {ignoring('dependency')} "
            "stack:runbook_dependency_unreadable"
            f'{{dependency=~"{regex(d.value for d in members)}"}})'
        )
    return " or ".join(parts)


# The alert's dependency label as a regex of its members (a server's comma list).
_MEMBERS = '(reReplaceAll "," "|" $labels.dependency)'


def _unreadable_summary() -> str:
    """What the checks could not read, each thing with its reason and the checks it blinds;
    then the blind checks that name nothing, with their reason."""
    located = query(
        "count by (dependency, item, reason) "
        f'(stack:runbook_check_unreadable:max{{dependency=~"(%[2]s)",{SEL}}})',
        _MEMBERS,
    )
    blinded = (
        '(printf "stack:runbook_check_unreadable:max{dependency=%q,item=%q,reason=%q,%s}" '
        "$u.Labels.dependency $u.Labels.item $u.Labels.reason $sel)"
    )
    unlocated = query(
        f"max by (check, reason) (runbook_check_failure_reason{{{SEL}}} == 1 and "
        f"{ignoring(EXPORTER, 'reason', 'depends_on')} stack:runbook_check_blind_unlocated:min"
        '{depends_on=~"(%[2]s)(,(%[2]s))*"})',
        _MEMBERS,
    )
    return (
        "{{ $first := true }}"
        f'{{{{ range $u := query {located} | sortByLabel "item" }}}}'
        "{{ if not $first }}; {{ end }}{{ $first = false }}"
        "{{ with $u.Labels.item }}{{ . }} {{ end }}({{ $u.Labels.reason }}) for "
        f'{{{{ range $j, $c := query {blinded} | sortByLabel "check" }}}}'
        "{{ if $j }}, {{ end }}{{ $c.Labels.check }}{{ end }}{{ end }}"
        f'{{{{ range $s := query {unlocated} | sortByLabel "check" }}}}'
        "{{ if not $first }}; {{ end }}{{ $first = false }}"
        "{{ $s.Labels.check }} ({{ $s.Labels.reason }}){{ end }}"
    )


def dependency_alerts(
    checks: Sequence[Check],
    servers: Sequence[Server],
    runbook_url: str,
    ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> list[dict[str, Any]]:
    """Alerts about what the exporter reads: down, flapping, or answering what no check can
    read. Each is one alert per server (or dependency set) and stack."""
    url = runbook_link(runbook_url, Anchor.PRE_OPEN.value, ready_within)
    any_down = "max without (dependency) (stack:runbook_dependency_down:min) == 1"
    flapping = _per_server("stack:runbook_dependency_flapping:min", servers)
    # The blind checks counted against the alert's dependencies (a comma list).
    reasons = listing(
        f"max by (check, reason) (runbook_check_failure_reason{{{SEL}}} == 1 and "
        f"{ignoring(EXPORTER, *UNREADABLE)} "
        '(stack:runbook_check_unreadable:max{dependency=~"(%[2]s)"} or '
        'stack:runbook_check_blind_unlocated:min{depends_on=~"(%[2]s)(,(%[2]s))*"}))',
        "check",
        "{{ $s.Labels.check }} ({{ $s.Labels.reason }})",
        _MEMBERS,
    )
    return [
        {
            "alert": f"{PREFIX}DependencyDown",
            "expr": _per_server("stack:runbook_dependency_down:min", servers),
            "for": DEPENDENCY_DOWN_FOR,
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "{{ $labels.dependency }} unreachable" + STACK_SUFFIX,
                "description": "No request to {{ $labels.dependency }} has succeeded for a "
                "sustained window (refused, reset, hung or 5xx) on any exporter of the stack; "
                "a comma list is one server serving several. The alerts of the checks that "
                "read it, and CannotRead and DependencyFlapping, are held back until it "
                "answers again.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}DependencyFlapping",
            "expr": f"({flapping}) unless {ignoring('dependency')} ({any_down})",
            "for": DEPENDENCY_FLAPPING_FOR,
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": "{{ $labels.dependency }} answers intermittently" + STACK_SUFFIX,
                "description": "Requests to {{ $labels.dependency }} keep alternating between "
                "answered and failed (refused, hung or 5xx) on every endpoint: the server "
                "itself comes and goes (one endpoint failing beside answering ones is not this, "
                "but CannotRead naming it). Checks reading it judge and error by turns, so "
                "their own alerts cannot hold; see runbook_dependency_endpoint_up and the "
                "exporter's log.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CannotRead",
            "expr": _cannot_read(checks, servers),
            "for": cannot_read_for(checks),
            "labels": {"severity": "page", "check": "dependency"},
            "annotations": {
                "summary": selecting(
                    "Cannot read {{ $labels.dependency }}: " + _unreadable_summary() + STACK_SUFFIX
                ),
                "description": selecting(
                    "The checks reading {{ $labels.dependency }} could not judge (status error) "
                    f"on every exporter of the stack: {reasons}. Nothing is known about what "
                    "they watch, so their own alerts cannot fire: a blind spot over paging "
                    "checks. The dependency answers (it is not down) but not in a form the "
                    "checks can read: fix the answer (the summary names the endpoint or key), "
                    "or the exporter's access to it."
                ),
                "runbook_url": url,
            },
        },
    ]


def exporter_alerts(
    checks: Sequence[Check],
    runbook_url: str,
    ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> list[dict[str, Any]]:
    """Alerts about the exporter itself: down, absent, a check that stopped, missed runs, and
    the timestamp-based safety net."""
    url = runbook_link(runbook_url, Anchor.PRE_OPEN.value, ready_within)
    paging = regex(paging_checks(checks))
    stuck_page = f'stack:runbook_check_stuck_expected:min{{check=~"{paging}"}} == 1'
    stuck_rule = f"more than {STUCK_INTERVALS} intervals (+{STUCK_SLACK_SECONDS} s) old"
    return [
        {
            "alert": f"{PREFIX}ExporterDown",
            "expr": f"{EXPORTER_UP} == 0",
            "for": "2m",
            "labels": {"severity": "page", "check": "exporter"},
            "annotations": {
                "summary": "quantops-exporter on {{ $labels.instance }} is down",
                "description": "Prometheus cannot scrape the exporter: no runbook "
                "check is being watched.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}ExporterAbsent",
            "expr": f"absent({EXPORTER_UP})",
            "for": "5m",
            "labels": {"severity": "page", "check": "exporter"},
            "annotations": {
                "summary": "No quantops-exporter target is scraped",
                "description": "No target Prometheus scrapes has exported "
                "quantops_exporter_build_info (whatever its job): the scrape configuration "
                "lost the exporter, or no exporter ever answered. The runbook is not being "
                "watched.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CheckStuck",
            "expr": stuck_page,
            "for": "30s",
            "labels": {"severity": "page"},
            "annotations": {
                "summary": "Check {{ $labels.check }} has stopped running: its page cannot fire"
                + STACK_SUFFIX,
                "description": f"The check's last run is {stuck_rule} on every exporter of the "
                "stack while it is expected: what it watches is not being judged, and its last "
                "verdict is all the alerts know. Look at the exporter's scheduler "
                "(quantops_exporter_scheduler_* metrics, its log) and restart it.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}CheckNotRunning",
            "expr": f"runbook:check_stuck == 1 unless {ignoring(EXPORTER)} ({stuck_page}) "
            f"unless {ignoring('source')} runbook:freshness_stale:count",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "Check {{ $labels.check }} has stopped running on "
                "{{ $labels.instance }}",
                "description": f"The check's last run is {stuck_rule}: this exporter's "
                "scheduler is stuck or overloaded.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}SchedulerMissingRuns",
            "expr": "increase(quantops_exporter_scheduler_missed_runs_total[15m]) > 0 or "
            "increase(quantops_exporter_scheduler_overlapping_runs_total[15m]) > 3",
            "for": "0m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "Check {{ $labels.check }} misses scheduled runs on "
                "{{ $labels.instance }}",
                "description": "Runs were dropped or overlapped: the check is slower "
                "than its interval or the event loop is blocked.",
                "runbook_url": url,
            },
        },
        {
            "alert": f"{PREFIX}FreshnessTimestampStale",
            "expr": f"runbook:freshness_stale:count unless {ignoring(EXPORTER, 'source')} "
            f"({stuck_page})",
            "for": "5m",
            "labels": {"severity": "ticket"},
            "annotations": {
                "summary": "{{ $labels.check }} stopped running on {{ $labels.instance }}: "
                "its {{ $labels.source }} timestamps are over twice their limit old",
                "description": "{{ $value }} {{ $labels.source }} instrument(s) were last read "
                "with a timestamp more than twice the configured limit old, and "
                "{{ $labels.check }} has not run since: this exporter is stuck, so whether the "
                "data is fresh now is not known. Computed from exported timestamps, so it fires "
                "even if the exporter's checks stopped updating.",
                "runbook_url": url,
            },
        },
    ]


def _not_ready(section: Section, checks: Sequence[Check]) -> str:
    """A template fragment listing `check (reason)` for each enabled check of `section` that
    failed, erred or was skipped because the market was closed, on the alert's stack."""
    names = regex(c.name for c in section_checks(checks, section))
    return listing(
        f'max by (check, reason) (runbook_check_failure_reason{{check=~"{names}",{SEL}}} == 1 '
        f"and {ignoring('reason', 'status')} "
        '(runbook_check_status{status=~"fail|error"} == 1 or '
        'runbook_check_failure_reason{reason="market_closed"} == 1) '
        f"and {ignoring('reason')} runbook_check_enabled == 1)",
        "check",
        "{{ $s.Labels.check }} ({{ $s.Labels.reason }})",
    )


def section_alerts(
    checks: Sequence[Check],
    runbook_url: str,
    ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> list[dict[str, Any]]:
    """`PreOpenNotReady`: the market opened more than `ready_within` seconds ago (and less than
    PREOPEN_WINDOW_SECONDS), and runbook_section_ok{section="pre-open"} has read 0 on every
    exporter of the stack for PREOPEN_RED_FOR; held while a paging check of the section fails,
    or a check of it cannot read, since that page (or CannotRead, DependencyDown) speaks. Every
    operand is one series per stack with only its target labels: they match as they are."""
    section = Section.PRE_OPEN
    members = section_checks(checks, section)
    paging = regex(paging_checks(members))
    every = regex(c.name for c in members)
    since_open = (
        f"min without ({EXPORTER}) (time() - runbook_market_last_open_timestamp_seconds) "
        f"> {ready_within:g} < {PREOPEN_WINDOW_SECONDS}"
    )
    market_open = (
        f"max without ({EXPORTER}) (runbook_market_next_close_timestamp_seconds "
        "< runbook_market_next_open_timestamp_seconds)"
    )
    red = (
        f"max without ({EXPORTER}, section) (max_over_time(runbook_section_ok"
        f'{{section="{section.slug}"}}[{PREOPEN_RED_FOR}])) == 0'
    )
    spoken = (
        f'max without (check) (stack:runbook_check_failing:max{{check=~"{paging}"}}) == 1 or '
        "max without (check, depends_on) "
        f'(stack:runbook_check_blind:min{{check=~"{every}"}}) == 1'
    )
    after = duration(ready_within)
    return [
        {
            "alert": f"{PREFIX}PreOpenNotReady",
            "expr": f"{since_open} and {market_open} and {red} unless ({spoken})",
            "for": "0m",
            "labels": {"severity": "page", "check": "section", "section": section.slug},
            "annotations": {
                "summary": f"Pre-Open Spin-Up not green {after} after the open" + STACK_SUFFIX,
                "description": selecting(
                    f"More than {after} after the FX market opened, the Pre-Open Spin-Up is "
                    "still not green on every exporter of the stack (the runbook's step 6: if "
                    f"still flat after 5 minutes): {_not_ready(section, checks)}. No other "
                    "page speaks for these: a ticket check failing, or a check that has not "
                    "judged since the open (market_closed: its last run was before it). Run "
                    "`quantops-exporter check --section pre-open` or see the status page. "
                    "Only the first hour after an open is watched; then each check's own alert "
                    "owns it."
                ),
                "runbook_url": f"{runbook_url}#{Anchor.PRE_OPEN.value}",
            },
        }
    ]


def recording_rules(checks: Sequence[Check], servers: Sequence[Server]) -> list[dict[str, Any]]:
    """Every record, per exporter then per stack (records.py)."""
    return per_exporter(checks) + per_stack(checks, servers)


def build_rules(
    checks: Iterable[Check] = CHECKS,
    runbook_url: str = DEFAULT_RUNBOOK_URL,
    servers: Sequence[Server] = DEFAULT_SERVERS,
    preopen_ready_within: float = PREOPEN_READY_WITHIN_SECONDS,
) -> dict[str, Any]:
    """The rule file: recording rules, one alert per check, the runbook sections', the
    dependencies', the exporter's."""
    checks = tuple(checks)
    ready = preopen_ready_within
    return {
        "groups": [
            {"name": "quantops-runbook-records", "rules": recording_rules(checks, servers)},
            {
                "name": "quantops-runbook-checks",
                "rules": [
                    check_alert(c, ALERTS[c.name], runbook_url, ready_within=ready)
                    for c in checks
                    if c.name in ALERTS
                ],
            },
            {
                "name": "quantops-runbook-sections",
                "rules": section_alerts(checks, runbook_url, ready),
            },
            {
                "name": "quantops-runbook-dependencies",
                "rules": dependency_alerts(checks, servers, runbook_url, ready),
            },
            {
                "name": "quantops-runbook-exporter",
                "rules": exporter_alerts(checks, runbook_url, ready),
            },
        ]
    }


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The rule file as a prometheus-operator PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "quantops-runbook", "labels": {"release": "prometheus"}},
        "spec": rules,
    }


# libyaml's emitter writes the same bytes as PyYAML's pure-Python one (deploykit --check holds
# on the committed files either way), 2.3x faster for the whole generation (8.0 -> 3.4 s; the
# three variant rule-test files are 7.5 MB).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render(document: dict[str, Any]) -> str:
    """YAML as committed."""
    header = (
        "# Generated by `python -m quantops_exporter.deploykit` from the check catalog.\n"
        "# Do not edit by hand: change quantops_exporter/deploykit/ and regenerate.\n"
    )
    return header + yaml.dump(
        document, Dumper=_DUMPER, sort_keys=False, width=100, allow_unicode=True
    )
