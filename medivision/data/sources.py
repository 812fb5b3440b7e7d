"""Find the files a data source consists of. Nothing here decodes pixels."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

from medivision.io.images import IMAGE_SUFFIXES
from medivision.io.nifti import is_nifti

KAGGLE_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
KAGGLE_SPLITS = {"Training": "train", "Testing": "test"}
MNI152_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
_EXTENSION_LIST = ", ".join(sorted(IMAGE_SUFFIXES))


class DataError(ValueError):
    """Data that cannot be used as given. The message names the path and how to fix it."""


class ImageItem(NamedTuple):
    path: Path
    label: int
    split: str | None  # "train" or "test" as the source defines it; None: the source has no test split


class ImageListing(NamedTuple):
    items: list[ImageItem]
    class_names: list[str]
    skipped: list[tuple[str, str]]  # (path, reason) for files that are not images


def kaggle_listing(root: str | Path) -> ImageListing:
    """List the Kaggle "Brain Tumor MRI Dataset": root/{Training,Testing}/{class}/*.jpg.

    Training/ items get split "train", Testing/ items "test"; labels index KAGGLE_CLASSES. Files
    with other extensions are reported as skipped.
    """
    root = _existing_dir(root, "the folder holding Training/ and Testing/ (Kaggle 'Brain Tumor MRI Dataset')")
    missing = [name for name in KAGGLE_SPLITS if not (root / name).is_dir()]
    if missing:
        raise DataError(
            f"data.root={root} has no {' or '.join(name + '/' for name in missing)} folder: expected "
            f"Training/ and Testing/, each with class folders {', '.join(KAGGLE_CLASSES)}"
            f"{_root_hint(root)}"
        )
    items: list[ImageItem] = []
    skipped: list[tuple[str, str]] = []
    for folder, split in KAGGLE_SPLITS.items():
        for label, name in enumerate(KAGGLE_CLASSES):
            class_dir = root / folder / name
            if not class_dir.is_dir():
                raise DataError(
                    f"data.root={root} is missing the class folder {folder}/{name}/: every one of "
                    f"{', '.join(KAGGLE_CLASSES)} must exist under Training/ and Testing/"
                )
            images, others = _partition(_files_under(class_dir))
            if not images:
                raise DataError(
                    f"{class_dir} holds no images ({_EXTENSION_LIST}): add its images or fix data.root"
                )
            items += [ImageItem(path, label, split) for path in images]
            skipped += [(str(path), "not an image file extension") for path in others]
    return ImageListing(items, list(KAGGLE_CLASSES), skipped)


def folder_listing(root: str | Path) -> ImageListing:
    """List every image under root, recursively. There is no test split (split is None).

    Classes are the immediate subfolders when every image sits in one, else a single class "all".
    Files with other extensions are ignored: a plain folder may hold notes and spreadsheets.
    """
    root = _existing_dir(root, "a folder of images (searched recursively)")
    images, _ = _partition(_files_under(root))
    if not images:
        raise DataError(f"data.root={root} holds no images ({_EXTENSION_LIST}), searched recursively")
    parts = [path.relative_to(root).parts for path in images]
    if all(len(p) > 1 for p in parts):
        class_names = sorted({p[0] for p in parts})
        labels = [class_names.index(p[0]) for p in parts]
    else:
        class_names, labels = ["all"], [0] * len(images)
    return ImageListing(
        [ImageItem(path, label, None) for path, label in zip(images, labels)], class_names, []
    )


def volume_files(root: str | Path) -> list[Path]:
    """NIfTI volumes to slice: root itself when it is a .nii/.nii.gz file, else all of them below it."""
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise DataError(
            f"data.root={root} does not exist: point data.root at a .nii/.nii.gz file or a folder of them"
        )
    if root.is_file():
        if not is_nifti(root):
            raise DataError(f"data.root={root} is not a .nii or .nii.gz file")
        return [root]
    files = [path for path in _files_under(root) if is_nifti(path)]
    if not files:
        raise DataError(f"data.root={root} holds no .nii or .nii.gz files, searched recursively")
    return files


def mni152_file() -> Path:
    """The MNI ICBM152 2009 T1 template (197x233x189, 1 mm, uint8) shipped inside the nilearn wheel.

    Found through the installed package, never through nilearn's fetchers: nothing is downloaded.
    """
    return _nilearn_file(MNI152_T1)


def tissue_files() -> list[Path]:
    """The MNI152 2009 T1 template and its grey- and white-matter probability maps (same grid, stored 0..255),
    shipped inside the nilearn wheel: what the synthetic-contrast source draws from."""
    return [_nilearn_file(MNI152_T1.replace("_t1_", f"_{tissue}_")) for tissue in ("t1", "gm", "wm")]


def _nilearn_file(name: str) -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the demo set needs nilearn: pip install -e '.[demo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(
            f"{path} is missing from the installed nilearn: reinstall it with pip install -e '.[demo]'"
        )
    return path


def _existing_dir(root: str | Path | None, what: str) -> Path:
    if root is None:
        raise DataError(f"data.root is not set: point it at {what}")
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise DataError(f"data.root={path} does not exist: point data.root at {what}")
    if not path.is_dir():
        raise DataError(f"data.root={path} is a file: point data.root at {what}")
    return path


def _root_hint(root: Path) -> str:
    # Unpacking the Kaggle zip often adds one folder level, and Training/ itself is easy to point at by
    # mistake: name the folder one level down or up that holds both, instead of leaving the user to look.
    near = [*sorted(d for d in root.iterdir() if d.is_dir()), root.parent]
    found = next((d for d in near if d != root and all((d / name).is_dir() for name in KAGGLE_SPLITS)), None)
    return f"; did you mean data.root={found}?" if found else ""


def _files_under(folder: Path) -> list[Path]:
    """Regular files below folder, sorted, skipping hidden ones (.DS_Store, .ipynb_checkpoints/...)."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _partition(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in paths if p.suffix.lower() not in IMAGE_SUFFIXES]
