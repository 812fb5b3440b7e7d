"""Checks shared by the option mappings of the data config (degradation_options, contrast, intensity_augment)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def mapping_problems(options: Any, settings: type) -> list[str]:
    """Problems of a config mapping meant for the dataclass `settings`: not a mapping, or keys it lacks. Each is
    written to follow the caller's config key: "=... must be a mapping" or ".name is not an option; ..."."""
    if not isinstance(options, Mapping):
        return [f"={options!r} must be a mapping of option: value"]
    known = [field.name for field in fields(settings)]
    return [f".{name} is not an option; the options are {', '.join(known)}" for name in options if name not in known]


def settings_from(settings: type[T], options: Mapping[str, Any] | None, problems: list[str], key: str) -> T:
    """The dataclass `settings` from a config mapping checked beforehand (`problems`, written to follow `key`,
    raise ValueError); missing keys keep their defaults, and lists become the tuples the dataclass holds."""
    if problems:
        raise ValueError("; ".join(key + problem for problem in problems))
    values = dict(options or {})
    for name, value in values.items():
        if isinstance(value, Sequence) and not isinstance(value, str):
            values[name] = tuple(value)
    return settings(**values)
