"""Option mappings of the data config (degradation_options, contrast, intensity_augment) as frozen dataclasses
whose fields carry their own checks: each option is declared once, with its default, its check and what the
check requires, and a config mapping is checked against those fields where the config enters."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def option(default: Any, check: Callable[[Any], bool], requirement: str,
           convert: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field for a config option: `check(value)` says whether a config value is fine, `requirement`
    follows the key in the message when it is not ("must be ..." or "is not one of ..."), and `convert` turns a
    fine config value into the field's type (lists become tuples without it)."""
    return field(default=default, metadata={"check": check, "requirement": requirement, "convert": convert})


def option_problems(options: Any, settings: type) -> list[str]:
    """Problems of a config mapping meant for the dataclass `settings` ([] for None, which keeps the defaults):
    not a mapping, keys it lacks, or values its fields' checks refuse. Each is written to follow the caller's
    config key: "=... must be a mapping", ".name is not an option; ..." or ".name=value must be ..."."""
    if options is None:
        return []
    if not isinstance(options, Mapping):
        return [f"={options!r} must be a mapping of option: value"]
    declared = {entry.name: entry for entry in fields(settings)}
    problems = [f".{name} is not an option; the options are {', '.join(declared)}"
                for name in options if name not in declared]
    for name, value in options.items():
        check = declared[name].metadata.get("check") if name in declared else None
        if check is not None and not _passes(check, value):
            problems.append(f".{name}={plain(value)!r} {declared[name].metadata['requirement']}")
    return problems


def settings_from(settings: type[T], options: Mapping[str, Any] | None, key: str) -> T:
    """The dataclass `settings` from a config mapping; ValueError naming `key` when option_problems finds any.
    Missing keys keep their defaults, and values take their fields' types."""
    problems = option_problems(options, settings)
    if problems:
        raise ValueError("; ".join(key + problem for problem in problems))
    declared = {entry.name: entry for entry in fields(settings)}
    values = dict(options or {})
    for name, value in values.items():
        convert = declared[name].metadata.get("convert")
        if convert is not None:
            values[name] = convert(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            values[name] = tuple(value)
    return settings(**values)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_range(value: Any) -> tuple[float, float]:
    """A number or a [low, high] pair as (low, high); TypeError for anything else."""
    if is_number(value):
        return float(value), float(value)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2 or not all(map(is_number, value)):
        raise TypeError(value)
    return float(value[0]), float(value[1])


def number_in(low: float, high: float = float("inf"), high_open: bool = False) -> Callable[[Any], bool]:
    """The check of one number with low <= value <= high (< high with high_open)."""
    def check(value: Any) -> bool:
        return is_number(value) and low <= value and (value < high if high_open else value <= high)
    return check


def within(low_bound: float, high_bound: float, high_open: bool = False) -> Callable[[Any], bool]:
    """The check of a number or [low, high] range with low_bound <= low <= high <= high_bound (< with high_open)."""
    def check(value: Any) -> bool:
        low, high = number_range(value)
        return low_bound <= low <= high and (high < high_bound if high_open else high <= high_bound)
    return check


def choices_from(allowed: Sequence[str]) -> Callable[[Any], bool]:
    """The check of a non-empty list drawn from `allowed`."""
    def check(value: Any) -> bool:
        return not isinstance(value, str) and isinstance(value, Sequence) and bool(value) and set(value) <= set(allowed)
    return check


def plain(value: Any) -> Any:
    """Config lists as plain lists in messages (ListConfig prints its type otherwise)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


def _passes(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except (TypeError, ValueError):
        return False
