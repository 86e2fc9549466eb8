"""Decoding what the stack sends: one JSON decoder for Valkey values and HTTP bodies alike."""

from __future__ import annotations

import json

from quantops_exporter.sources.errors import BadPayload


def decode_json(raw: bytes | str, what: str) -> object:
    """The JSON document in `raw`, or BadPayload naming `what` and why."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadPayload(f"{what} is not JSON ({str(err)[:80]})") from err
