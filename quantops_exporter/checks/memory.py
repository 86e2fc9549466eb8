"""What checks remember between runs: since when a condition has held, when a value changed."""

from __future__ import annotations

import hashlib


class CheckMemory:
    """Per-process facts that outlive one run (kept across config reloads by the runtime)."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[float, float]] = {}  # key -> (since, last seen)
        self._fingerprints: dict[str, tuple[str, float | None]] = {}

    def holding_since(
        self, key: str, holds: bool, now: float, *, max_gap: float | None = None
    ) -> float | None:
        """When `holds` became continuously true for `key`, or None while it is false.

        `max_gap`: when the condition was last seen longer ago than this (no run saw it: the
        weekend, when a market-hours check does not run, or the daemon was down), it is not
        known to have held in between, so it counts from now.
        """
        if not holds:
            self._since.pop(key, None)
            return None
        since, seen = self._since.get(key, (now, now))
        if max_gap is not None and now - seen > max_gap:
            since = now
        self._since[key] = (since, now)
        return since

    def changed_at(self, key: str, value: bytes, now: float) -> float | None:
        """When `value` last changed; None until a change has been seen (unknown before)."""
        fingerprint = hashlib.sha256(value).hexdigest()
        previous = self._fingerprints.get(key)
        if previous is None:
            self._fingerprints[key] = (fingerprint, None)
            return None
        if previous[0] != fingerprint:
            self._fingerprints[key] = (fingerprint, now)
            return now
        return previous[1]
