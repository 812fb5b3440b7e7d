"""What `data.*` configures, as the typed groups SRDataModule takes, checked once where the config enters.

`data_module(**config)` is the config's `_target_`: it sorts the flat `data.*` keys into their groups, checks
them (one ValueError naming every wrong key and its fix) and builds the SRDataModule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from medivision.data.build import EMBEDDED, SOURCES
from medivision.data.contrast import ContrastOptions
from medivision.data.degradation_options import KINDS, THROUGH_PLANE_KINDS, DegradationOptions
from medivision.data.intensity_augment import IntensityAugment
from medivision.data.options import option_problems
from medivision.data.volumes import PLANES
from medivision.io.intensity import INTENSITY_POLICIES

if TYPE_CHECKING:
    from medivision.data.datamodule import SRDataModule


@dataclass(frozen=True)
class Source:
    """Which images, and how each becomes a cached HR image: read by the one reader of its format, mapped to
    [0, 1] by the `intensity` policy (medivision.io.intensity), padded square and resized to hr_size."""

    source: str = "kaggle"  # kaggle | folder | nifti | mni152 | synth | real_scans (medivision.data.build)
    root: str | None = None  # the data's folder or file; None for the embedded sources
    hr_size: int = 128
    intensity: str = "minmax"
    axes: tuple[str, ...] = PLANES  # volumes: the planes they are sliced along
    min_foreground: float = 0.15  # volumes: the least foreground fraction a kept slice has
    cache_dir: str = ".cache/medivision"
    contrast: ContrastOptions = field(default_factory=ContrastOptions)  # synth: the contrasts drawn


@dataclass(frozen=True)
class LowRes:
    """How LR is made from HR: float [B, 1, H, W] -> [B, 1, H/scale, W/scale] (medivision.data.degradations)."""

    scale: int = 4
    degradation: str = "bicubic"
    options: DegradationOptions = field(default_factory=DegradationOptions)


@dataclass(frozen=True)
class Splits:
    """How images are split (medivision.data.splits); `seed` also seeds validation and test LR."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # at most this many training images; None: all


@dataclass(frozen=True)
class Loading:
    """How batches are served: by DataLoader workers, or cut on the device from the whole split (on_device)."""

    batch_size: int = 16
    num_workers: int = 0
    pin_memory: bool = False
    on_device: bool = False


@dataclass(frozen=True)
class Augmentation:
    """What changes training HR: random flips/rotations (`flips`) and intensity changes."""

    flips: bool = True
    intensity: IntensityAugment = field(default_factory=IntensityAugment)


# Each config key's group and field where the names differ from the key.
_RENAMED = {"degradation_options": ("lowres", "options"), "augment": ("augmentation", "flips"),
            "intensity_augment": ("augmentation", "intensity")}
_GROUPS = {"source": Source, "lowres": LowRes, "splits": Splits, "loading": Loading, "augmentation": Augmentation}
_KEYS = {entry.name: (group, entry.name) for group, kind in _GROUPS.items() for entry in fields(kind)
         if (group, entry.name) not in _RENAMED.values()} | _RENAMED


def data_module(**config: Any) -> SRDataModule:
    """SRDataModule from the flat `data.*` keys (see conf/data/brain_tumor_mri.yaml), checked first: ValueError
    naming every wrong key. Then the source's files are found (DataError naming data.root and the fix)."""
    from medivision.data.datamodule import SRDataModule

    return SRDataModule(**data_settings(**config))


def data_settings(**config: Any) -> dict[str, Any]:
    """The typed groups SRDataModule takes, by argument name, from the flat `data.*` keys; ValueError naming
    every wrong key."""
    config.pop("_target_", None)
    unknown = [f"data.{key} is not a setting; the settings are {', '.join(_KEYS)}" for key in config
               if key not in _KEYS]
    problems = unknown or _problems(config)
    if problems:
        raise ValueError("; ".join(problems))
    values: dict[str, dict[str, Any]] = {group: {} for group in _GROUPS}
    for key, value in config.items():
        group, name = _KEYS[key]
        values[group][name] = value
    values["source"]["axes"] = tuple(values["source"].get("axes", PLANES))
    values["source"]["contrast"] = ContrastOptions.from_config(config.get("contrast"))
    values["lowres"]["options"] = DegradationOptions.from_config(config.get("degradation_options"))
    values["augmentation"]["intensity"] = IntensityAugment.from_config(config.get("intensity_augment"))
    return {group: _GROUPS[group](**given) for group, given in values.items()}


def _problems(config: Mapping[str, Any]) -> list[str]:
    """Every wrong value of the flat config, each naming its key."""
    settings = {key: config.get(key, getattr(_GROUPS[group](), name)) for key, (group, name) in _KEYS.items()
                if key not in ("contrast", "degradation_options", "intensity_augment")}
    return (_source_problems(settings) + _lowres_problems(settings, config.get("degradation_options"))
            + _split_problems(settings) + _loading_problems(settings)
            + [f"data.contrast{problem}" for problem in option_problems(config.get("contrast"), ContrastOptions)]
            + [f"data.intensity_augment{problem}"
               for problem in option_problems(config.get("intensity_augment"), IntensityAugment)])


def _source_problems(settings: Mapping[str, Any]) -> list[str]:
    source, axes = settings["source"], settings["axes"]
    problems = []
    if source not in SOURCES:
        problems.append(f"data.source={source!r} is not one of {', '.join(SOURCES)}")
    elif settings["root"] is None and source not in EMBEDDED:
        problems.append(
            f"data.root is not set: data.source={source} reads its files from data.root; pass "
            "data.root=/path/to/the/data (for the Kaggle set: the folder holding Training/ and Testing/, "
            "which MEDIVISION_DATA=/path/to/the/data also sets)")
    if isinstance(axes, str) or not isinstance(axes, Sequence) or not axes or len(set(axes)) != len(axes) \
            or not set(axes) <= set(PLANES):
        problems.append(f"data.axes={list(axes) if isinstance(axes, Sequence) else axes} must be distinct planes "
                        f"from {', '.join(PLANES)}")
    if not 0 <= settings["min_foreground"] < 1:
        problems.append(f"data.min_foreground={settings['min_foreground']} must be in [0, 1)")
    if settings["intensity"] not in INTENSITY_POLICIES:
        problems.append(f"data.intensity={settings['intensity']!r} is not one of {', '.join(INTENSITY_POLICIES)}")
    return problems


def _lowres_problems(settings: Mapping[str, Any], options: Mapping[str, Any] | None) -> list[str]:
    scale, hr_size, kind = settings["scale"], settings["hr_size"], settings["degradation"]
    problems = []
    if scale < 1 or hr_size < 1:
        problems.append(f"data.hr_size={hr_size} and data.scale={scale} must be positive")
    elif hr_size % scale:
        problems.append(f"data.hr_size={hr_size} is not divisible by data.scale={scale}")
    if kind not in KINDS:
        problems.append(f"data.degradation={kind!r} is not one of {', '.join(KINDS)}")
    elif KINDS[kind].through_plane != (scale == 1):
        problems.append(f"data.degradation={kind} with data.scale={scale}: the through-plane kinds "
                        f"({', '.join(THROUGH_PLANE_KINDS)}) and only they keep the HR grid, data.scale=1")
    return problems + [f"data.degradation_options{problem}" for problem in option_problems(options, DegradationOptions)]


def _split_problems(settings: Mapping[str, Any]) -> list[str]:
    val_fraction, test_fraction, limit = settings["val_fraction"], settings["test_fraction"], settings["limit"]
    problems = [f"data.{key}={value} must be in [0, 1)"
                for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction))
                if not 0 <= value < 1]
    if val_fraction + test_fraction >= 1:
        problems.append(
            f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction} leaves no training data")
    if limit is not None and limit < 1:
        problems.append(f"data.limit={limit} must be at least 1, or null for no limit")
    return problems


def _loading_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    if settings["batch_size"] < 1:
        problems.append(f"data.batch_size={settings['batch_size']} must be at least 1")
    if settings["num_workers"] < 0:
        problems.append(f"data.num_workers={settings['num_workers']} must be 0 or more")
    return problems
