"""Where `medivision.enhance` reads and writes: listing the input, naming the outputs, refusing overwrites.

Nothing here reads pixels. Every check runs before the first file is written, so a refused run leaves
no partial output behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medivision.io.formats import FORMATS, detect

_DESCRIBED = [format.described for format in FORMATS.values()]
KINDS_TEXT = ", ".join(_DESCRIBED[:-1]) + " or " + _DESCRIBED[-1]


@dataclass
class Plan:
    """What to enhance: files of each kind paired with the file each one's output goes to."""

    images: list[tuple[Path, Path]] = field(default_factory=list)
    dicom: list[tuple[Path, Path]] = field(default_factory=list)
    nifti: list[tuple[Path, Path]] = field(default_factory=list)
    ignored: int = 0  # files of the input folder that are none of the kinds above
    uncertainty: bool = False  # each output has an uncertainty map beside it (uncertainty_path)

    @property
    def pairs(self) -> list[tuple[Path, Path]]:
        return self.images + self.dicom + self.nifti

    @property
    def targets(self) -> list[Path]:
        """Every file the run writes: the outputs, and their uncertainty maps when asked for."""
        outputs = [target for _, target in self.pairs]
        return outputs + ([uncertainty_path(target) for target in outputs] if self.uncertainty else [])


def uncertainty_path(target: Path) -> Path:
    """Where the uncertainty map of the output `target` goes: beside it, "_uncertainty" added to its name
    (scan.nii.gz -> scan_uncertainty.nii.gz, IM0001 -> IM0001_uncertainty)."""
    name = target.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else target.suffix
    return target.with_name(f"{name[:len(name) - len(suffix)]}_uncertainty{suffix}")


def plan(input: str | Path, output: str | Path, dicom_format: str = "dicom", overwrite: bool = False,
         allow_inside_input: bool = False, uncertainty: bool = False) -> Plan:
    """Pair every input file with its output file, or raise ValueError/FileNotFoundError saying why not.

    A file input writes to `output` (or into `output`, when that is an existing folder, under the input's
    name). A folder input writes to the same relative paths under the `output` folder. JPEG outputs
    become PNG; DICOM outputs become PNG with dicom_format=png. Refused: an output that is the input,
    an input file overwritten, an output folder inside the input folder (unless allow_inside_input),
    and existing output files (unless overwrite); with `uncertainty`, the same for the uncertainty maps.
    """
    if dicom_format not in ("dicom", "png"):
        raise ValueError(f"dicom_format={dicom_format!r} is not one of dicom, png")
    source = Path(input).expanduser().resolve()
    target = Path(output).expanduser().resolve()
    if not source.exists():
        raise FileNotFoundError(f"input={source} does not exist")
    if target == source:
        raise ValueError(f"output={target} is the input: choose another output path")
    result = _plan_folder(source, target, dicom_format, allow_inside_input) if source.is_dir() else (
        _plan_file(source, target, dicom_format))
    result.uncertainty = uncertainty
    _refuse_overwrites(result, overwrite)
    return result


def _plan_file(source: Path, target: Path, dicom_format: str) -> Plan:
    kind = detect(source)
    if kind is None:
        raise ValueError(f"input={source} is none of {KINDS_TEXT}")
    if target.is_dir():
        target = target / FORMATS[kind].output_name(source, dicom_format)
    problem = FORMATS[kind].output_problem(target, dicom_format)
    if problem:
        raise ValueError(f"output={target}: {problem}")
    result = Plan()
    getattr(result, FORMATS[kind].plan_list).append((source, target))
    return result


def _plan_folder(source: Path, target: Path, dicom_format: str, allow_inside_input: bool) -> Plan:
    if target.is_file():
        raise ValueError(f"input={source} is a folder, so output={target} must be a folder, not a file")
    inside = target.is_relative_to(source)
    if inside and not allow_inside_input:
        raise ValueError(
            f"output={target} is inside the input folder {source}: choose an output outside it, or pass "
            f"allow_inside_input=true (its files are then left out of the input)"
        )
    result = Plan()
    for path in sorted(source.rglob("*")):
        if not path.is_file() or (inside and path.is_relative_to(target)) or path.name.startswith("."):
            continue
        kind = detect(path)
        if kind is None:
            result.ignored += 1
            continue
        relative = path.relative_to(source)
        output = target / relative.parent / FORMATS[kind].output_name(path, dicom_format)
        getattr(result, FORMATS[kind].plan_list).append((path, output))
    if not result.pairs:
        raise ValueError(f"input={source} holds no {KINDS_TEXT} (searched recursively)")
    return result


def _refuse_overwrites(result: Plan, overwrite: bool) -> None:
    sources = {source for source, _ in result.pairs}
    targets = result.targets
    clobbered = [target for target in targets if target in sources]
    if clobbered:
        raise ValueError(f"output {clobbered[0]} would overwrite an input file: choose another output")
    if len(set(targets)) < len(targets):
        twice = next(target for target in targets if targets.count(target) > 1)
        raise ValueError(f"two input files would both write {twice} (e.g. x.jpg and x.png): rename one")
    if not overwrite:
        existing = [target for target in targets if target.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ValueError(
                f"output {existing[0]} already exists{more}: choose another output, or pass overwrite=true"
            )
