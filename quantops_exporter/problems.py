"""Configuration problems in the operator's words: the variable, the value, what kind of value
it takes (seconds, a fraction), an example of a good one, and the fix.

Pydantic says "Input should be greater than 0"; an operator needs
`QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=0: must be above 0 seconds; set e.g.
QUANTOPS_CHECKS__valkey_ping__INTERVAL_SECONDS=5, or unset it for valkey_ping's default`.
Values are shown as a shell would take them (never a Python repr), secrets as `***`, URLs with
their passwords masked; the hints themselves are never masked.
"""

from __future__ import annotations

import difflib
import enum
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from quantops_exporter.redact import MASK, redact

PREFIX = "invalid configuration:"
# A validator that checks several variables at once names each itself (`problems` below).
OWN_LINES = "quantops_problems"


def show(value: object) -> str:
    """`value` as an operator writes it in an environment file: `false`, `3`, `0.3`, `a,b`."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple | list | frozenset | set):
        return ",".join(show(item) for item in value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def quoted(value: object) -> str:
    """`value` shown, quoted as a shell would need it (`''` for an empty value)."""
    text = show(value)
    return shlex.quote(text) if text else "''"


def problems(lines: Iterable[str]) -> PydanticCustomError:
    """An error for a validator whose lines already name their variables (several at once)."""
    return PydanticCustomError(OWN_LINES, "{lines}", {"lines": "\n".join(lines)})


def closest(name: str, candidates: Iterable[str], *, prefix: str = "") -> str | None:
    """The candidate `name` most likely misspells (compared without a shared `prefix`, which
    would make every name look alike), or None."""
    options = {c.upper().removeprefix(prefix.upper()): c for c in candidates}
    match = difflib.get_close_matches(
        name.upper().removeprefix(prefix.upper()), list(options), n=1, cutoff=0.7
    )
    return options[match[0]] if match else None


@dataclass(frozen=True, slots=True)
class Hint:
    """What a variable takes: its kind in words and a good value (its default)."""

    kind: str  # "seconds", "a fraction from 0 to 1", "one of json, logfmt, console"
    example: str | None  # None: no example to give (no default)
    whose: str = "the"  # "the default" or "valkey_ping's default"
    fraction: bool = False


def hint_for(alias: str, field: FieldInfo) -> Hint:
    """The kind and example of a settings field, read off its type, bounds and default."""
    annotation = field.annotation
    # Bounds as pydantic records them (annotated_types' Ge and Le carry `ge` and `le`).
    lowest = [getattr(m, "ge") for m in field.metadata if hasattr(m, "ge")]  # noqa: B009
    highest = [getattr(m, "le") for m in field.metadata if hasattr(m, "le")]  # noqa: B009
    default = field.get_default(call_default_factory=True)
    example = None if default in (None, (), {}) else show(default)
    fraction = lowest == [0] and highest == [1] and annotation is float
    return Hint(_kind(alias, annotation, fraction), example, fraction=fraction)


def _kind(alias: str, annotation: object, fraction: bool) -> str:
    if fraction:
        return "a fraction from 0 to 1"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in annotation)
    upper = alias.upper()
    for suffix, unit in (
        ("_SEC", "seconds"),
        ("_SECONDS", "seconds"),
        ("_MINUTES", "minutes"),
        ("_BYTES", "bytes"),
        ("_BPS", "basis points"),
    ):
        if upper.endswith(suffix):
            return unit
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    return "a number" if annotation is float else "a value"


def describe(
    err: ValidationError,
    variable_of: Callable[[tuple[int | str, ...]], str],
    hints: Mapping[str, Hint],
) -> list[str]:
    """One line per problem of `err`; `variable_of` names the variable of an error's location,
    `hints` says what a variable (upper case) takes."""
    lines: list[str] = []
    for problem in err.errors():
        if problem["type"] == OWN_LINES:
            lines += str(problem.get("ctx", {}).get("lines", "")).splitlines()
            continue
        if not problem["loc"]:  # a rule across settings: its message names them
            lines.append(problem["msg"].removeprefix("Value error, "))
            continue
        variable = variable_of(tuple(problem["loc"]))
        hint = hints.get(variable.upper(), Hint("a value", None))
        lines.append(_line(variable, problem, hint))
    return lines


_SECRET_VARIABLES = frozenset({"VALKEY_PASSWORD", "API_BEARER_TOKEN"})


def _line(variable: str, problem: ErrorDetails, hint: Hint) -> str:
    value = problem.get("input")
    given = ""
    if not isinstance(value, dict) and value is not None:
        given = "=" + (MASK if variable.upper() in _SECRET_VARIABLES else redact(quoted(value)))
    head = f"{variable}{given}"
    if problem["type"] in ("value_error", "assertion_error"):
        # Our own validators' words: they say what is accepted, with an example.
        return f"{head}: {problem['msg'].removeprefix('Value error, ')}"
    what = _problem(problem, hint)
    if what is None:
        return f"{head}: {problem['msg']}"
    if hint.fraction and _number(value) is not None and 1 < (_number(value) or 0) <= 100:
        what += f", not a percentage ({show(value)} % is {show((_number(value) or 0) / 100)})"
    if hint.example is None:
        return f"{head}: {what}"
    whose = "the" if hint.whose == "the" else f"{hint.whose}'s"
    return f"{head}: {what}; set e.g. {variable}={hint.example}, or unset it for {whose} default"


def _problem(problem: ErrorDetails, hint: Hint) -> str | None:
    ctx: dict[str, Any] = dict(problem.get("ctx", {}))
    kind = hint.kind
    unit = f" {kind}" if kind in ("seconds", "minutes", "bytes", "basis points") else ""
    bounds = {
        "greater_than": ("above", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("below", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    kind_of = problem["type"]
    if kind_of in bounds:
        word, key = bounds[kind_of]
        if hint.fraction:
            return f"must be {kind}"
        return f"must be {word} {show(ctx.get(key))}{unit}"
    if kind_of in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        if unit:
            return f"is not a number of{unit}"
        return "is not a whole number" if kind == "a whole number" else f"must be {kind}"
    if kind_of in ("bool_parsing", "bool_type", "enum", "literal_error"):
        return f"must be {kind}"
    if kind_of == "extra_forbidden":
        return "is not a setting here"
    return None


def _number(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
