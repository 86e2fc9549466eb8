"""What checks remember between runs: since when a condition has held, when a value changed."""

from __future__ import annotations

import hashlib


class CheckMemory:
    """Per-process facts that outlive one run (kept across config reloads by the runtime)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._fingerprints: dict[str, tuple[str, float | None]] = {}

    def holding_since(self, key: str, holds: bool, now: float) -> float | None:
        """When `holds` became continuously true for `key`, or None while it is false."""
        if not holds:
            self._since.pop(key, None)
            return None
        return self._since.setdefault(key, now)

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
