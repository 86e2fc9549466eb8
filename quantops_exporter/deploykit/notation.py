"""promtool's series notation, read and written: `a+bxn`, `axn`, `_`, `_xn`, `stale`; the
selectors the cases write (`name{k="v",...}`) and the durations they evaluate at.

`1x3` is four samples (1 1 1 1), `0+60x2` three (0 60 120), `_x3` three blanks. The invariance
variants (variants.py) expand a case's series, change them (a label, a time shift, a healthy
copy) and write them back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

STALE = "stale"
Sample = float | str | None  # a number, STALE, or None for a blank (`_`)

_DURATION = re.compile(r"([0-9]+)(h|m|s)")
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_RUN = re.compile(r"^(-?[0-9.]+(?:e[+-]?[0-9]+)?)(?:([+-])([0-9.]+(?:e[+-]?[0-9]+)?))?x([0-9]+)$")
_BLANKS = re.compile(r"^_x([0-9]+)$")


def expand(values: str) -> list[Sample]:
    """Every sample of a promtool `values` string, in order."""
    samples: list[Sample] = []
    for token in values.split():
        if token == "_":
            samples.append(None)
        elif token == STALE:
            samples.append(STALE)
        elif blanks := _BLANKS.match(token):
            samples.extend([None] * int(blanks.group(1)))
        elif run := _RUN.match(token):
            start, sign, step, count = run.groups()
            delta = float(step or 0) * (-1 if sign == "-" else 1)
            samples.extend(float(start) + delta * n for n in range(int(count) + 1))
        else:
            samples.append(float(token))
    return samples


def parse(selector: str) -> tuple[str, dict[str, str]]:
    """A case's series selector as its name and labels (the cases write no quotes in values)."""
    found = _SELECTOR.match(selector)
    if found is None:
        raise ValueError(f"not a series selector: {selector}")
    return found.group(1), dict(_PAIR.findall(found.group(2)))


def selector(name: str, labels: Mapping[str, str]) -> str:
    """The selector of `name` with `labels`, as the cases write it."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def seconds(duration: str | int) -> int:
    """A promtool duration (`1m30s`, `150s`, or seconds as a number) in seconds."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in _DURATION.findall(duration))


def number(value: float) -> str:
    """A value as promtool reads it back: integral values without a decimal point."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def compress(samples: Sequence[Sample]) -> str:
    """The samples as a promtool `values` string, runs of a constant step written as one."""
    tokens: list[str] = []
    index = 0
    while index < len(samples):
        sample = samples[index]
        end = index + 1
        if sample is None or sample == STALE:
            while end < len(samples) and samples[end] == sample:
                end += 1
            count = end - index
            word = "_" if sample is None else STALE
            tokens.append(word if count == 1 or word == STALE else f"_x{count}")
            if word == STALE and count > 1:
                tokens.extend([STALE] * (count - 1))
            index = end
            continue
        assert isinstance(sample, float)
        step = _step(samples, index)
        while end < len(samples) and _is(samples[end], sample + step * (end - index)):
            end += 1
        count = end - index - 1
        if count == 0:
            tokens.append(number(sample))
        elif step == 0:
            tokens.append(f"{number(sample)}x{count}")
        else:
            sign = "+" if step > 0 else "-"
            tokens.append(f"{number(sample)}{sign}{number(abs(step))}x{count}")
        index = end
    return " ".join(tokens)


def _step(samples: Sequence[Sample], index: int) -> float:
    following = samples[index + 1] if index + 1 < len(samples) else None
    current = samples[index]
    if isinstance(following, float) and isinstance(current, float):
        return following - current
    return 0.0


def _is(sample: Sample, expected: float) -> bool:
    return isinstance(sample, float) and abs(sample - expected) < 1e-9
