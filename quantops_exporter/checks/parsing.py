"""Reading the stack's loosely specified JSON: OANDA decimals, wrappers, weight maps."""

from __future__ import annotations

import math
from collections.abc import Mapping

from quantops_exporter.sources.errors import BadPayload


def as_decimal(value: object, what: str) -> float:
    """An OANDA decimal: a number or a numeric string (OANDA sends strings); finite."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadPayload(f"{what} is {type(value).__name__}, not a decimal")
    try:
        number = float(value)
    except ValueError as err:
        raise BadPayload(f"{what} is {str(value)[:30]!r}, not a decimal") from err
    if not math.isfinite(number):
        raise BadPayload(f"{what} is not finite")
    return number


def as_object(value: object, what: str) -> dict[str, object]:
    """A JSON object, or BadPayload naming what was expected."""
    if not isinstance(value, dict):
        raise BadPayload(f"{what} is {type(value).__name__}, expected an object")
    return value


def unwrap(payload: object, key: str, what: str) -> dict[str, object]:
    """`{key: {...}}` or the object itself (the stack passes some OANDA bodies through)."""
    document = as_object(payload, what)
    inner = document.get(key)
    return as_object(inner, what) if isinstance(inner, dict) else document


def as_list(payload: object, keys: tuple[str, ...], what: str) -> list[object]:
    """A list, or the list under the first of `keys` in an object."""
    if isinstance(payload, list):
        return payload
    document = as_object(payload, what)
    for key in keys:
        found = document.get(key)
        if isinstance(found, list):
            return found
    raise BadPayload(f"{what}: expected a list or an object with {' or '.join(keys)}")


def as_weight_map(payload: object, what: str) -> dict[str, float]:
    """An instrument → weight map, flat or wrapped in `{"weights": …}`."""
    document = as_object(payload, what)
    inner = document.get("weights", document)
    return {
        str(k): as_decimal(v, f"{what} weight of {k}") for k, v in as_object(inner, what).items()
    }


def numeric_hash(fields: Mapping[bytes | str, bytes | str], what: str) -> dict[str, float]:
    """A Valkey HASH whose values must all be numbers."""
    out = {}
    for key, value in fields.items():
        # Undecodable bytes become U+FFFD and then fail as "not a decimal": a bad payload.
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        out[name] = as_decimal(text, f"{what} field {name}")
    return out
