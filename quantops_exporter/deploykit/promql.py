"""The rules' label vocabulary and the PromQL and template fragments built on it.

Prometheus attaches target labels to every series it scrapes: `job`, `instance`, and whatever
the scrape configuration adds (`stack`, `region`, `team`). The rules name none of them but
`instance`, the exporter, which aggregation across replicas removes: everything else the
exporter did not export is the target's, and every record and alert carries it through. So
matching never says `on(job, stack)`: it says `ignoring(...)` the exporter's own labels, and a
one-to-one `*` keeps every label (`a * on(x) b` keeps only `x`). Template queries select the
alert's stack by every label the alert carries but the exporter's own.
"""

from __future__ import annotations

from collections.abc import Iterable

# The one label aggregation across replicas removes: alerts about the stack have no exporter.
EXPORTER = "instance"
# Every label the exporter exports or the rules add (and Prometheus's `alertname`); any other
# label of a series is its target's, kept by every rule.
OWN_LABELS = (
    "alertname",
    "check",
    "status",
    "reason",
    "source",
    "instrument",
    "dependency",
    "depends_on",
    "endpoint",
    "item",
    "procedure",
    "step",
    "section",
    "session",
)
# quantops_exporter_build_info's labels: the exporter's version, not the target's.
BUILD_LABELS = ("version", "revision", "revision_date", "python_version")
SEL = "@SEL@"  # in a template query: every target label of the alert (its job, stack, ...)
STACK_SUFFIX = "{{ with $labels.stack }} on {{ . }}{{ end }}"


def listed(names: Iterable[str]) -> str:
    """Label names for a `without`, `ignoring` or `by` clause."""
    return ", ".join(names)


def ignoring(*labels: str) -> str:
    """Match two series of one exporter (or of one stack, with EXPORTER) on every label but
    the exporter's own `labels` they carry."""
    return f"ignoring({listed(labels)})"


def across_replicas(op: str, expr: str, *own: str) -> str:
    """`op` over the replicas of each stack: every label kept but the exporter's and `own`."""
    return f"{op} without ({listed((EXPORTER, *own))}) ({expr})"


def regex(names: Iterable[str]) -> str:
    """A regex matching exactly one of `names` (PromQL anchors label regexes)."""
    return "|".join(names)


# Defines `$sel` as the alert's target labels, `k="v",` each (PromQL takes the trailing comma),
# in label order; a template query puts it in a selector to stay within the alert's stack.
_SELECT = (
    '{{ $sel := "" }}{{ range $k, $v := $labels }}'
    f'{{{{ if not (match "^(__name__|{regex(OWN_LABELS)})$" $k) }}}}'
    '{{ $sel = printf "%s%s=%q," $sel $k $v }}{{ end }}{{ end }}'
)


def selecting(template: str) -> str:
    """An annotation whose queries select the alert's stack: `$sel` defined before `template`
    (only when it queries)."""
    return _SELECT + template if "$sel" in template else template


def query(promql: str, *more: str) -> str:
    """A template `query` argument: `promql` with @SEL@ selecting the alert's target labels
    (and any further `%[2]s`, `%[3]s` filled by the template values `more`, in order)."""
    escaped = promql.replace("\\", "\\\\").replace('"', '\\"').replace(SEL, "%[1]s")
    return f'(printf "{escaped}" {" ".join(("$sel", *more))})'


def value(promql: str) -> str:
    """A template fragment printing a query's first value for the alert's stack."""
    return (
        f"{{{{ with query {query(promql)} }}}}{{{{ . | first | value | humanize }}}}"
        "{{ else }}n/a{{ end }}"
    )


def listing(promql: str, label: str, shown: str, *more: str, glue: str = ", ") -> str:
    """A template fragment listing a query's series sorted by `label`, `glue` between them,
    each rendered by `shown` (a template over `$s`)."""
    return (
        f'{{{{ range $i, $s := query {query(promql, *more)} | sortByLabel "{label}" }}}}'
        f"{{{{ if $i }}}}{glue}{{{{ end }}}}{shown}{{{{ end }}}}"
    )
