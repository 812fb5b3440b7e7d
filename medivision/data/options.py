"""Checks shared by the option mappings of the data config (degradation_options, contrast, intensity_augment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def mapping_problems(options: Any, settings: type) -> list[str]:
    """Problems of a config mapping meant for the dataclass `settings`: not a mapping, or keys it lacks. Each is
    written to follow the caller's config key: "=... must be a mapping" or ".name is not an option; ..."."""
    if not isinstance(options, Mapping):
        return [f"={options!r} must be a mapping of option: value"]
    known = [field.name for field in fields(settings)]
    return [f".{name} is not an option; the options are {', '.join(known)}" for name in options if name not in known]
