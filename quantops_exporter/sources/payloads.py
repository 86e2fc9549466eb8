"""Decoding what the stack sends: one JSON decoder for Valkey values and HTTP bodies alike."""

from __future__ import annotations

import json
import re

import orjson

from quantops_exporter.sources.errors import BadPayload

MAX_INT_DIGITS = 40  # far beyond any epoch in nanoseconds (19 digits) or account figure
# A document without a longer run of digits cannot hold a longer integer: it is decoded by the
# C scanner alone. A per-integer Python hook cost 40 % of a manifold_freshness run (cProfile,
# 1,000 instruments of 20 numbers each: 400,000 calls).
_LONG_DIGITS_TEXT = re.compile(f"[0-9]{{{MAX_INT_DIGITS + 1}}}")
_LONG_DIGITS_BYTES = re.compile(_LONG_DIGITS_TEXT.pattern.encode())
# orjson turns an integer outside int64/uint64 into a float; a document that might hold one
# (20 digits, or 19 after a minus sign) is decoded by the standard library. A positive epoch in
# nanoseconds (19 digits) stays on the fast path.
_WIDE_DIGITS_TEXT = re.compile("-[0-9]{19}|[0-9]{20}")


def decode_json(raw: bytes | str, what: str, *, exact_integers: bool = True) -> object:
    """The JSON document in `raw`, or BadPayload naming `what` and why.

    Bounded: an integer longer than MAX_INT_DIGITS digits (which no float can hold, and which
    Python refuses past 4,300 digits) or nesting deeper than the interpreter's recursion limit
    is refused as bad_payload instead of crashing a check.

    orjson decodes first (7x faster: 0.5 µs for a 20-number manifold, against 3.5 µs, which
    was half of a manifold_freshness run at 1,000 instruments after the raw pipeline). What it
    refuses (NaN and Infinity, which Python writers emit; numbers beyond a double; lone
    surrogates) goes to the standard library, which accepts or words the refusal exactly as
    before: the result never depends on which decoder ran (tests/unit/test_sources.py).

    `exact_integers=False` lets orjson turn an integer beyond 64 bits into the nearest float
    instead of looking for one first (so a document is refused for an integer longer than
    MAX_INT_DIGITS only beyond a double's range): for a reader that takes one timestamp out of
    the document, where such a number is years in the future either way (parse_timestamp
    divides it), the search was 0.9 of a manifold's 4.4 µs.
    """
    if not exact_integers or not _may_hold_a_wide_integer(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    long_digits = _LONG_DIGITS_BYTES if isinstance(raw, bytes) else _LONG_DIGITS_TEXT
    hook = _bounded_int if long_digits.search(raw) else None  # type: ignore[arg-type]
    try:
        return json.loads(raw, parse_int=hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadPayload(f"{what} is not JSON ({str(err)[:80]})") from err
    except RecursionError as err:
        raise BadPayload(f"{what} is nested too deeply to be the stack's data") from err
    except ValueError as err:  # _bounded_int, or Python's own integer digit limit
        raise BadPayload(f"{what}: {str(err)[:80]}") from err


def quick_object(raw: object) -> dict[str, object] | None:
    """orjson's reading of `raw` when it is bytes holding a JSON object; None for anything
    else, which the caller then reads with decode_json (and words its refusal). Integers
    beyond 64 bits come back as floats, as with decode_json(exact_integers=False)."""
    if type(raw) is not bytes:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return document if type(document) is dict else None


# Every digit as "9", so a run of 19 or 20 is a substring search: the regex above cost 7 µs for
# a 400-byte manifold of 22 numbers, 5x orjson's decoding of it (cProfile, 1,000 instruments).
_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_NINETEEN = b"9" * 19


def _may_hold_a_wide_integer(raw: bytes | str) -> bool:
    if not isinstance(raw, bytes):
        return _WIDE_DIGITS_TEXT.search(raw) is not None
    nines = raw.translate(_AS_NINES)
    return b"-" + _NINETEEN in nines or _NINETEEN + b"9" in nines


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    return int(text)
