"""Decoding what the stack sends: one JSON decoder for Valkey values and HTTP bodies alike."""

from __future__ import annotations

import json

from quantops_exporter.sources.errors import BadPayload

MAX_INT_DIGITS = 40  # far beyond any epoch in nanoseconds (19 digits) or account figure


def decode_json(raw: bytes | str, what: str) -> object:
    """The JSON document in `raw`, or BadPayload naming `what` and why.

    Bounded: an integer longer than MAX_INT_DIGITS digits (which no float can hold, and which
    Python refuses past 4,300 digits) or nesting deeper than the interpreter's recursion limit
    is refused as bad_payload instead of crashing a check.
    """
    try:
        return json.loads(raw, parse_int=_bounded_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadPayload(f"{what} is not JSON ({str(err)[:80]})") from err
    except RecursionError as err:
        raise BadPayload(f"{what} is nested too deeply to be the stack's data") from err
    except ValueError as err:  # _bounded_int, or Python's own integer digit limit
        raise BadPayload(f"{what}: {str(err)[:80]}") from err


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    return int(text)
