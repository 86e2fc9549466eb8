"""The environment variables that are settings: their names, the misspelled ones, and what each
takes, for the messages that name a variable and its fix (problems.py words them).

Every function takes the settings' fields (`Settings.model_fields`), so the names come from the
declarations alone: a setting added to `config.Settings` is known here at once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from quantops_exporter.checks.base import Check
from quantops_exporter.checks.catalog import CHECK_NAMES, CHECKS, CheckOverride
from quantops_exporter.problems import Hint, closest, describe, hint_for, show

CHECKS_ENV = "QUANTOPS_CHECKS"
OURS = "QUANTOPS_"
SEE_SETTINGS = "see `quantops-exporter check-config` and docs/configuration.md"
_CHECK_KEYS = tuple(name.upper() for name in CheckOverride.model_fields)
_CATALOG = MappingProxyType({check.name: check for check in CHECKS})
Fields = Mapping[str, FieldInfo]


def known(fields: Fields) -> dict[str, str]:
    """Every QUANTOPS_* variable a setting reads (the per-check ones spelled out), by its
    upper-case form (names are case-insensitive)."""
    names = [str(f.validation_alias) for f in fields.values()]
    names += [f"{CHECKS_ENV}__{check}__{key}" for check in CHECK_NAMES for key in _CHECK_KEYS]
    return {name.upper(): name for name in names if name.upper().startswith(OURS)}


def _judged_here(name: str) -> bool:
    """Whether `name` is checked against the known variables: every QUANTOPS_* one, except a
    per-check variable naming an unknown check (the settings validator lists the known checks)."""
    upper, prefix = name.upper(), f"{CHECKS_ENV}__".upper()
    if not upper.startswith(prefix):
        return upper.startswith(OURS)
    return upper.removeprefix(prefix).partition("__")[0] in {c.upper() for c in CHECK_NAMES}


def unknown(variables: Mapping[str, str | None], where: str, fields: Fields) -> list[str]:
    """A line per misspelled QUANTOPS_* variable naming the closest valid one: silently
    running on the default is worse (QUANTOPS_LISTEN_ADRESS would serve on :9110)."""
    names = known(fields)
    lines = []
    for name in sorted(n for n in variables if _judged_here(n) and n.upper() not in names):
        match = closest(name, names, prefix=OURS)
        hint = f"did you mean {names[match.upper()]}?" if match else SEE_SETTINGS
        lines.append(f"{name} (in {where}) is not a setting: {hint}")
    return lines


def describe_settings(err: ValidationError, fields: Fields) -> list[str]:
    """A line per problem of the settings' validation error."""
    aliases = _aliases(fields)

    def variable(loc: tuple[int | str, ...]) -> str:
        if not loc:
            return "settings"
        parts = [str(part) for part in loc]
        head = aliases.get(parts[0].lower(), parts[0].upper())
        if head != CHECKS_ENV:
            return head
        return "__".join([CHECKS_ENV, *parts[1:2], *(part.upper() for part in parts[2:])])

    return describe(err, variable, _hints(fields))


def overlap(check: Check, given: CheckOverride) -> str | None:
    """Why a check's timeout and interval would let runs overlap, naming the variable given."""
    if check.timeout < check.interval:
        return None
    prefix, default = f"{CHECKS_ENV}__{check.name}__", _CATALOG[check.name]
    if given.timeout_seconds is not None:
        good = min(default.timeout, check.interval / 2)
        return (
            f"{prefix}TIMEOUT_SECONDS={show(check.timeout)}: must be below the check's "
            f"interval, {show(check.interval)} seconds, so runs cannot overlap; set e.g. "
            f"{prefix}TIMEOUT_SECONDS={show(good)}, or raise {prefix}INTERVAL_SECONDS"
        )
    return (
        f"{prefix}INTERVAL_SECONDS={show(check.interval)}: must be above the check's timeout, "
        f"{show(check.timeout)} seconds, so runs cannot overlap; set e.g. "
        f"{prefix}INTERVAL_SECONDS={show(default.interval)}, or lower {prefix}TIMEOUT_SECONDS "
        "too"
    )


def _aliases(fields: Fields) -> dict[str, str]:
    aliases = {}
    for name, field in fields.items():
        aliases[name] = aliases[str(field.validation_alias).lower()] = str(field.validation_alias)
    return aliases


def _hints(fields: Fields) -> dict[str, Hint]:
    """What each variable takes; a per-check variable's example is that check's default."""
    hints = {
        str(f.validation_alias).upper(): hint_for(str(f.validation_alias), f)
        for f in fields.values()
    }
    hints.update(_check_hints())
    return hints


@functools.cache
def _check_hints() -> dict[str, Hint]:
    hints = {}
    for check in CHECKS:
        prefix = f"{CHECKS_ENV}__{check.name}__".upper()
        for key, example in (
            ("INTERVAL_SECONDS", check.interval),
            ("TIMEOUT_SECONDS", check.timeout),
            ("ENABLED", check.enabled),
        ):
            kind = "true or false" if key == "ENABLED" else "seconds"
            hints[prefix + key] = Hint(kind, show(example), whose=check.name)
    return hints
