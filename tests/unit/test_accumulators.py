"""The accumulators write what prometheus_client's Counter and Histogram write for the same
updates (both formats), and a snapshot keeps what they held when it was taken."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from quantops_exporter.accumulators import CounterVec, HistogramVec

BUCKETS = (0.005, 0.1, 1.0, 30.0)
_CREATED = re.compile(rb"(_created(\{[^}]*\})?) \S+")


def without_created(body: bytes) -> bytes:
    """The body with every _created value blanked (each side took its own time)."""
    return _CREATED.sub(rb"\1 T", body)


_UPDATES = st.lists(
    st.tuples(
        st.sampled_from(["valkey_ping", "kill_switch", 'we"ird\\check']),
        st.sampled_from(["ok", "fail"]),
        st.floats(0, 100) | st.sampled_from([0.0, 0.005, 0.1, 1.0, 30.0, 1e9]),
    ),
    max_size=30,
)


@given(updates=_UPDATES)
def test_the_same_updates_give_prometheus_clients_bytes(
    updates: list[tuple[str, str, float]],
) -> None:
    """Counters by two labels and a histogram by one, series created in any order, values on
    and between bucket bounds: text 0.0.4 and OpenMetrics bodies are prometheus_client's."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("runs", "Runs by status", ["check", "status"], registry=theirs)
    histogram = Histogram("took_seconds", "How long", ["check"], buckets=BUCKETS, registry=theirs)
    counter_vec = CounterVec("runs", "Runs by status", ["check", "status"], ours)
    histogram_vec = HistogramVec("took_seconds", "How long", ["check"], ours, BUCKETS)
    for check, status, value in updates:
        counter.labels(check, status).inc()
        counter_vec.labels(check, status).inc()
        histogram.labels(check).observe(value)
        histogram_vec.labels(check).observe(value)
    for encode in (generate_latest, generate_openmetrics):
        assert without_created(encode(ours)) == without_created(encode(theirs))


def test_a_snapshot_keeps_the_values_it_copied() -> None:
    """Updates after a snapshot do not show in it (a render collects it in another thread)."""
    registry = CollectorRegistry()
    ages = HistogramVec("age_seconds", "Ages", ["source"], registry, BUCKETS)
    ages.labels("ws_manifold").observe_many([1.0, 2.0, 50.0])
    snapshot = ages.snapshot()
    ages.labels("ws_manifold").observe_many([3.0] * 10)
    (family,) = list(snapshot.collect())
    count = next(s.value for s in family.samples if s.name == "age_seconds_count")
    assert count == 3
    assert registry.get_sample_value("age_seconds_count", {"source": "ws_manifold"}) == 13
