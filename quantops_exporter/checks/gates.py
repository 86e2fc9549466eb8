"""Pre-Open Spin-Up §3, Daily Ops Snapshot §2 and §5: the rolling gates and span integrity."""

from __future__ import annotations

from collections.abc import Sequence

from quantops_exporter.checks.base import CheckContext, from_valkey, with_unconfigured
from quantops_exporter.checks.freshness import GATES_BLOB_KEY
from quantops_exporter.checks.parsing import as_decimal, as_object
from quantops_exporter.checks.thresholds import Thresholds
from quantops_exporter.checks.verdict import Measure, Reading, Reason, Status, Verdict, fail, ok
from quantops_exporter.sources.errors import WrongType
from quantops_exporter.sources.payloads import decode_json
from quantops_exporter.sources.stack_metrics import StackMetrics
from quantops_exporter.worker import off_loop

ROLLING_GATE = "sep_rolling_gate"
SPAN_INTEGRITY = "sep_span_integrity_ok"


def judge_gates_eligible(
    metrics: StackMetrics, instruments: Sequence[str], minimum: int
) -> Verdict:
    """Count `sep_rolling_gate` series with eligible="1" (their value is always 1: count, do
    not sum) and compare with the minimum; export the count and configured buffers."""
    if not metrics.has(ROLLING_GATE):
        return Verdict(
            Status.FAIL, Reason.MISSING, f"the stack's /metrics has no {ROLLING_GATE} series"
        )
    series = metrics.series(ROLLING_GATE)
    eligible = sorted(
        {s.labels.get("instrument", "?") for s in series if s.labels.get("eligible") == "1"}
    )
    readings = [Reading(Measure.GATES_ELIGIBLE, float(len(eligible)))]
    configured = frozenset(instruments)  # a scan of the tuple per series: 0.56 s at 10,000
    for s in series:
        inst = s.labels.get("instrument", "")
        if inst in configured and "buf" in s.labels:
            try:
                readings.append(Reading(Measure.GATE_BUFFER, float(s.labels["buf"]), (inst,)))
            except ValueError:
                continue  # a malformed buf label is not ours to judge; the count still stands
    observations = {
        "eligible": [i for i in eligible if i in configured],
        "eligible_count": len(eligible),
        "minimum": minimum,
    }
    if len(eligible) < minimum:
        return fail(
            Reason.THRESHOLD,
            f"{len(eligible)} eligible instruments, need at least {minimum}",
            readings=tuple(readings),
            observations=observations,
        )
    return ok(
        f"{len(eligible)} eligible (at least {minimum}): {', '.join(eligible)}",
        readings=tuple(readings),
        observations=observations,
    )


def judge_gates_sanity(blob: object, instruments: Sequence[str], t: Thresholds) -> Verdict:
    """In the gates blob: each eligible instrument has enough repetitions and a low enough
    hazard, every hazard is in [0, 1], and no instrument is unknown. The older hysteresis
    shape (no repetition/hazard) passes on what it has."""
    document = as_object(blob, GATES_BLOB_KEY)
    gates = as_object(document.get("gates", {}), f"{GATES_BLOB_KEY}.gates")
    repetition = as_object(document.get("repetition", {}), f"{GATES_BLOB_KEY}.repetition")
    hazard = as_object(document.get("hazard", {}), f"{GATES_BLOB_KEY}.hazard")
    problems: list[str] = []
    known = set(instruments)
    unknown = {k for part in (gates, repetition, hazard) for k in part} - known
    if unknown:
        # Counted, not named by label: names read off the wire never become label values.
        problems.append(
            f"{len(unknown)} instrument(s) not in HOTBAND_PAIRS: {', '.join(sorted(unknown)[:5])}"
        )
    for inst, value in hazard.items():
        h = as_decimal(value, f"hazard of {inst}")
        if not 0.0 <= h <= 1.0:
            problems.append(f"{inst} hazard {h:g} outside [0, 1]")
    echo_shape = "repetition" in document or "hazard" in document
    eligible = [i for i, g in gates.items() if g in (1, "1", True)]
    if echo_shape:
        for inst in eligible:
            rep = repetition.get(inst)
            count = (
                as_decimal(
                    as_object(rep, f"repetition of {inst}").get("count_1h"),
                    f"repetition.count_1h of {inst}",
                )
                if rep is not None
                else 0.0
            )
            if count < t.echo_min_repetitions:
                problems.append(
                    f"{inst} eligible with count_1h {count:g} < "
                    f"ECHO_MIN_REPETITIONS {t.echo_min_repetitions:g}"
                )
            if inst in hazard and as_decimal(hazard[inst], inst) > t.echo_hazard_max:
                problems.append(
                    f"{inst} eligible with hazard {as_decimal(hazard[inst], inst):g} > "
                    f"ECHO_HAZARD_MAX {t.echo_hazard_max:g}"
                )
    observations = {
        "eligible": sorted(i for i in eligible if i in known),
        "shape": "echo" if echo_shape else "hysteresis",
    }
    if problems:
        return Verdict(
            Status.FAIL, Reason.THRESHOLD, "; ".join(problems), observations=observations
        )
    shape = "" if echo_shape else " (hysteresis-era blob: no repetition/hazard to check)"
    return ok(
        f"{len(eligible)} eligible, repetitions and hazards sane{shape}",
        observations=observations,
    )


def judge_span_integrity(metrics: StackMetrics) -> Verdict:
    """`sep_span_integrity_ok` equals 1."""
    series = metrics.series(SPAN_INTEGRITY)
    if not series:
        return fail(Reason.MISSING, f"the stack's /metrics has no {SPAN_INTEGRITY}")
    if any(s.value != 1 for s in series):
        return fail(
            Reason.UNEXPECTED_VALUE,
            f"{SPAN_INTEGRITY} is {series[0].value:g}: strict-span monotonicity broken",
        )
    return ok(f"{SPAN_INTEGRITY} is 1")


async def check_gates_eligible(ctx: CheckContext) -> Verdict:
    """At least QUANTOPS_MIN_ELIGIBLE `sep_rolling_gate{eligible="1"}` series."""
    metrics = await ctx.stack_metrics.read()
    return await off_loop(_judge_eligible, metrics, ctx.instruments, ctx.thresholds.min_eligible)


def _judge_eligible(metrics: StackMetrics, instruments: tuple[str, ...], minimum: int) -> Verdict:
    """gates_eligible's verdict, in the worker thread (a series per instrument)."""
    verdict = judge_gates_eligible(metrics, instruments, minimum)
    seen = (s.labels.get("instrument", "") for s in metrics.series(ROLLING_GATE))
    return with_unconfigured(verdict, "gates_eligible", seen, instruments)


async def check_gates_sanity(ctx: CheckContext) -> Verdict:
    """Repetition counts and hazards in `opt:rolling:gates_blob` are sane."""
    read = await ctx.valkey.get(GATES_BLOB_KEY)
    # Errors raised in the worker come back through the await: located here, on the loop.
    with from_valkey(GATES_BLOB_KEY):
        if read.wrong_type:
            raise WrongType(f"{GATES_BLOB_KEY} is not a STRING")
        if read.missing:
            return fail(Reason.MISSING, f"{GATES_BLOB_KEY} is missing")
        return await off_loop(_judge_sanity, read.value, ctx.instruments, ctx.thresholds)


def _judge_sanity(raw: bytes, instruments: tuple[str, ...], t: Thresholds) -> Verdict:
    """gates_sanity's verdict, in the worker thread (the blob holds every instrument)."""
    return judge_gates_sanity(decode_json(raw, GATES_BLOB_KEY), instruments, t)


async def check_span_integrity(ctx: CheckContext) -> Verdict:
    """`sep_span_integrity_ok` is 1 on the stack's /metrics."""
    return judge_span_integrity(await ctx.stack_metrics.read())
