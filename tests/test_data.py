"""The data package on real files: Kaggle layout, NIfTI volumes, the MNI152 demo, degradations, bad input."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medivision.data.datamodule import SRDataModule
from medivision.data.decode import read_gray, to_hr
from medivision.data.degradations import augment, degrade, upsample_bicubic
from medivision.data.settings import data_module
from medivision.data.sources import DataError
from medivision.data.splits import image_hashes
from medivision.data.volumes import PLANES

KAGGLE_CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def kaggle_dm(root: Path, cache_dir: Path, **kwargs) -> SRDataModule:
    dm = data_module(source="kaggle", root=str(root), cache_dir=str(cache_dir), **kwargs)
    dm.setup()
    return dm


def dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of the square applied to x [..., H, W]."""
    rotations = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return rotations + [r.flip(-1) for r in rotations]


def split_hashes(dm: SRDataModule) -> list[set[int]]:
    sets = [dm.train_set, dm.val_set, dm.test_set]
    hashes = image_hashes(torch.cat([s.hr for s in sets]))
    bounds = np.cumsum([0] + [len(s) for s in sets])
    return [set(hashes[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]


def write_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


# --- degradations and augmentation ------------------------------------------------------------


def test_degrade_is_antialiased_bicubic():
    hr = torch.rand(2, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    lr = degrade(hr)
    assert lr.shape == (2, 1, 32, 32) and lr.dtype == torch.float32
    expected = F.interpolate(hr, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(lr, expected.clamp(0, 1))
    # Antialiasing averages the noise away; a plain bicubic 4x keeps most of it.
    naive = F.interpolate(hr, size=(32, 32), mode="bicubic", align_corners=False)
    assert lr.std() < 0.5 * naive.std()


def test_degrade_clamps_overshoot_and_keeps_device_and_batch():
    hr = torch.zeros(3, 2, 64, 64)
    hr[..., ::2, :] = 1.0  # hard edges make bicubic overshoot
    lr = degrade(hr, scale=2)
    assert lr.shape == (3, 2, 32, 32)
    assert lr.min() >= 0 and lr.max() <= 1
    torch.testing.assert_close(degrade(hr[1:2], scale=2), lr[1:2])


def test_degrade_rejects_bad_sizes_and_the_config_bad_kinds():
    with pytest.raises(ValueError, match="130x130 is not divisible by scale 4"):
        degrade(torch.rand(1, 1, 130, 130))
    with pytest.raises(ValueError, match="data.degradation='gaussian' is not one of bicubic, kspace"):
        data_module(source="mni152", degradation="gaussian")


def test_upsample_bicubic_is_the_plain_bicubic_baseline():
    lr = torch.rand(2, 1, 32, 32)
    sr = upsample_bicubic(lr)
    assert sr.shape == (2, 1, 128, 128)
    expected = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(sr, expected)


def test_augment_applies_one_symmetry_per_sample():
    hr = torch.rand(64, 1, 16, 16)
    out = augment(hr, generator=torch.Generator().manual_seed(0))
    assert out.shape == hr.shape and out.dtype == hr.dtype
    used = set()
    for x, y in zip(hr, out):
        matches = [k for k, t in enumerate(dihedral(x)) if torch.equal(t, y)]
        assert len(matches) == 1
        used.add(matches[0])
    assert used == set(range(8))  # 64 uniform draws cover all 8 symmetries
    again = augment(hr, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_augment_keeps_non_square_shapes():
    hr = torch.rand(32, 1, 8, 12)
    out = augment(hr, generator=torch.Generator().manual_seed(1))
    assert out.shape == hr.shape
    for x, y in zip(hr, out):
        flips = [x, x.flip(-1), x.flip(-2), x.flip(-2, -1)]
        assert any(torch.equal(flipped, y) for flipped in flips)


# --- Kaggle layout -----------------------------------------------------------------------------


def test_kaggle_layout_splits_and_classes(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path)
    assert dm.class_names == KAGGLE_CLASSES
    # 25 training files minus the duplicate of a test image; 9 test files.
    assert dm.sizes == {"train": 20, "val": 4, "test": 9}
    assert dm.train_set.class_counts(4) == [4, 5, 6, 5]
    assert dm.val_set.class_counts(4) == [1, 1, 1, 1]
    assert dm.test_set.class_counts(4) == [3, 2, 2, 2]
    assert all("/Testing/" in path for path in dm.test_set.paths)
    assert all("/Training/" in path for path in dm.train_set.paths + dm.val_set.paths)
    assert dm.num_skipped == 0
    assert dm.train_set.hr.dtype == torch.uint8 and dm.train_set.hr.shape[1:] == (1, 128, 128)
    summary = dm.summary()
    assert "glioma" in summary and "removed 1 exact duplicates across splits" in summary


def test_split_is_seeded(kaggle_root, tmp_path):
    first = kaggle_dm(kaggle_root, tmp_path, seed=0)
    again = kaggle_dm(kaggle_root, tmp_path, seed=0)
    other = kaggle_dm(kaggle_root, tmp_path, seed=1)
    assert first.val_set.paths == again.val_set.paths
    assert first.train_set.paths == again.train_set.paths
    assert set(first.val_set.paths) != set(other.val_set.paths)
    assert first.test_set.paths == other.test_set.paths  # Testing/ is always the test split


def test_exact_duplicates_across_splits_are_removed(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path)
    assert dm.duplicates_removed == 1
    assert str(kaggle_root / "Testing" / "glioma" / "Te-gl_dup.jpg") in dm.test_set.paths
    original = str(kaggle_root / "Training" / "glioma" / "Tr-gl_0000.jpg")
    assert original not in dm.train_set.paths + dm.val_set.paths
    train, val, test = split_hashes(dm)
    assert not (train & val) and not (train & test) and not (val & test)


def test_cache_is_hit_on_the_second_setup(kaggle_root, tmp_path, monkeypatch, caplog):
    first = kaggle_dm(kaggle_root, tmp_path)
    assert first.cache_hit is False and first.cache_path.is_file()
    assert first.cache_path.parent == tmp_path

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a cache file")

    monkeypatch.setattr("medivision.data.build.decode_images", no_decoding)
    with caplog.at_level(logging.INFO, logger="medivision.data"):
        second = kaggle_dm(kaggle_root, tmp_path)
    assert second.cache_hit is True and second.cache_path == first.cache_path
    assert f"data cache hit: {first.cache_path}" in caplog.text
    assert torch.equal(second.train_set.hr, first.train_set.hr)
    assert second.duplicates_removed == 1


def test_cache_key_follows_files_and_settings(kaggle_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(kaggle_root, root)
    cache = tmp_path / "cache"
    before = kaggle_dm(root, cache)
    touched = root / "Training" / "pituitary" / "Tr-pi_0003.jpg"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after_touch = kaggle_dm(root, cache)
    assert after_touch.cache_hit is False and after_touch.cache_path != before.cache_path
    smaller = kaggle_dm(root, cache, hr_size=64)
    assert smaller.cache_hit is False
    assert smaller.cache_path not in (before.cache_path, after_touch.cache_path)
    assert smaller.train_set.hr.shape[-2:] == (64, 64)
    # Split settings are applied after loading, so they reuse the cache.
    assert kaggle_dm(root, cache, seed=5, val_fraction=0.3).cache_hit is True


def test_sixteen_bit_png_keeps_its_range(kaggle_root, tmp_path):
    path = kaggle_root / "Training" / "notumor" / "Tr-no_16bit.png"
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint16 and raw.max() == 65535
    dm = kaggle_dm(kaggle_root, tmp_path)
    datasets = [dm.train_set, dm.val_set]
    hr = next(s.hr[s.paths.index(str(path)), 0] for s in datasets if str(path) in s.paths).numpy()
    assert hr.max() >= 250 and hr.min() == 0
    assert (hr == 255).mean() < 0.1  # an 8-bit clip would saturate nearly the whole head
    # Same picture stored as 8 bits gives the same HR image.
    eight_bit = tmp_path / "eight.png"
    Image.fromarray(np.round(raw / 257).astype(np.uint8)).save(eight_bit)
    assert np.abs(hr.astype(int) - to_hr(read_gray(eight_bit)).astype(int)).max() <= 1


def test_to_hr_pads_to_a_centred_square():
    gray = np.ones((40, 80), dtype=np.float32)
    hr = to_hr(gray, size=64)
    assert hr.shape == (64, 64) and hr.dtype == np.uint8
    assert hr[:14].max() == 0 and hr[-14:].max() == 0  # 20 padded rows above and below, scaled by 0.8
    assert (hr[20:44] == 255).all()


def test_batches_after_transfer(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path, batch_size=4)
    raw = next(iter(dm.val_dataloader()))
    assert raw["hr"].dtype == torch.uint8 and raw["hr"].shape == (4, 1, 128, 128)
    batch = dm.on_after_batch_transfer(raw, 0)
    assert set(batch) == {"hr", "lr", "label", "index"}
    assert batch["index"].tolist() == raw["index"].tolist()
    assert batch["hr"].shape == (4, 1, 128, 128) and batch["hr"].dtype == torch.float32
    assert batch["lr"].shape == (4, 1, 32, 32) and batch["lr"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64
    assert 0 <= batch["hr"].min() and batch["hr"].max() <= 1 and batch["hr"].max() > 0.5
    assert 0 <= batch["lr"].min() and batch["lr"].max() <= 1
    torch.testing.assert_close(batch["hr"], dm.val_set.hr[:4].float() / 255)
    torch.testing.assert_close(batch["lr"], degrade(batch["hr"]))
    assert batch["label"].tolist() == dm.val_set.labels[:4].tolist()


def test_only_training_batches_are_augmented(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path)
    raw = {"hr": dm.train_set.hr[:16], "label": dm.train_set.labels[:16], "index": dm.train_set.rows[:16]}
    expected = raw["hr"].float() / 255
    torch.testing.assert_close(dm.on_after_batch_transfer(raw, 0)["hr"], expected)  # no trainer
    dm.trainer = SimpleNamespace(training=False)
    torch.testing.assert_close(dm.on_after_batch_transfer(raw, 0)["hr"], expected)
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    batch = dm.on_after_batch_transfer(raw, 0)
    assert not torch.equal(batch["hr"], expected)
    for x, y in zip(expected, batch["hr"]):
        assert any(torch.equal(t, y) for t in dihedral(x))
    torch.testing.assert_close(batch["lr"], degrade(batch["hr"]))


def test_dataloaders(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path, batch_size=8)
    train = dm.train_dataloader()
    assert train.drop_last and len(train) == 20 // 8
    labels = [b["label"] for b in train]
    assert sum(len(x) for x in labels) == 16
    again = [b["label"] for b in kaggle_dm(kaggle_root, tmp_path, batch_size=8).train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(labels, again))  # seeded shuffle
    val = dm.val_dataloader()
    assert not val.drop_last
    assert torch.equal(torch.cat([b["label"] for b in val]), dm.val_set.labels)
    assert not kaggle_dm(kaggle_root, tmp_path, batch_size=64).train_dataloader().drop_last


def test_limit_keeps_at_most_that_many_per_split(kaggle_root, tmp_path):
    dm = kaggle_dm(kaggle_root, tmp_path, limit=3)
    assert dm.sizes == {"train": 3, "val": 3, "test": 3}
    assert kaggle_dm(kaggle_root, tmp_path, limit=3).train_set.paths == dm.train_set.paths


def test_plain_folder_source(kaggle_root, tmp_path):
    dm = data_module(source="folder", root=str(kaggle_root / "Training"), cache_dir=str(tmp_path))
    dm.setup()
    assert dm.class_names == KAGGLE_CLASSES
    assert sum(dm.sizes.values()) == 25
    assert dm.sizes["val"] == 4 and dm.sizes["test"] == 4  # one per class each
    assert dm.duplicates_removed == 0


# --- bad input ---------------------------------------------------------------------------------


def test_missing_root(tmp_path):
    message = (
        r"data.root=\S*nowhere does not exist: point data.root at the folder holding Training/ and Testing/ "
        r"\(Kaggle 'Brain Tumor MRI Dataset'\)$"
    )
    with pytest.raises(DataError, match=message):
        kaggle_dm(tmp_path / "nowhere", tmp_path)


def test_root_without_training_and_testing(kaggle_root, tmp_path):
    (tmp_path / "root" / "images").mkdir(parents=True)
    message = (
        r"has no Training/ or Testing/ folder: expected Training/ and Testing/, "
        r"each with class folders glioma, meningioma, notumor, pituitary$"
    )
    with pytest.raises(DataError, match=message):
        kaggle_dm(tmp_path / "root", tmp_path)
    shutil.copytree(kaggle_root, tmp_path / "root" / "archive")  # unzipped one level too deep
    with pytest.raises(DataError, match=r"did you mean data.root=\S*root/archive\?"):
        kaggle_dm(tmp_path / "root", tmp_path)


def test_missing_class_folder(kaggle_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(kaggle_root, root)
    shutil.rmtree(root / "Testing" / "meningioma")
    with pytest.raises(DataError, match="missing the class folder Testing/meningioma/"):
        kaggle_dm(root, tmp_path)


def test_class_folder_without_images(kaggle_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(kaggle_root, root)
    for path in (root / "Training" / "pituitary").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"Training/pituitary holds no images \(.bmp, .jpeg, .jpg"):
        kaggle_dm(root, tmp_path)


def test_unreadable_files_are_skipped_with_one_warning(kaggle_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(kaggle_root, root)
    jpeg = (root / "Training" / "glioma" / "Tr-gl_0001.jpg").read_bytes()
    bad = {
        root / "Training" / "glioma" / "truncated.jpg": jpeg[: len(jpeg) // 2],
        root / "Training" / "meningioma" / "empty.jpg": b"",
        root / "Testing" / "notumor" / "notes.JPG": b"not an image\n",
        root / "Training" / "pituitary" / "readme.txt": b"scan protocol\n",
    }
    for path, content in bad.items():
        path.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm = kaggle_dm(root, tmp_path)
    messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(messages) == 1
    assert "skipped 4 of 38 files" in messages[0]
    for path in bad:
        assert str(path) in messages[0]
    assert dm.num_skipped == 4
    assert sum(dm.sizes.values()) == 33  # 34 good files minus the duplicate


def test_all_files_unreadable(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_bytes(b"<html>")
    with pytest.raises(DataError, match=r"none of the 2 files could be read, e.g. \S*a.png"):
        data_module(source="folder", root=str(folder), cache_dir=str(tmp_path)).setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hr_size": 130}, "data.hr_size=130 is not divisible by data.scale=4"),
        ({"source": "dicom"}, "data.source='dicom' is not one of kaggle, folder, nifti, mni152"),
        ({"root": None}, "data.root is not set: data.source=kaggle reads its files from data.root"),
        ({"val_fraction": 1.5}, r"data.val_fraction=1.5 must be in \[0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "leaves no training data"),
        ({"degradation": "jpeg"}, "data.degradation='jpeg' is not one of bicubic"),
        ({"axes": ["axial", "mid"]}, r"data.axes=\[.*\] must be distinct planes from sagittal, coronal"),
        ({"limit": 0}, "data.limit=0 must be at least 1"),
    ],
)
def test_bad_arguments_name_the_config_key(kwargs, message):
    arguments = {"source": "kaggle", "root": "/data/brain_tumor_mri"} | kwargs
    with pytest.raises(ValueError, match=message):
        data_module(**arguments)


def test_four_dimensional_nifti_is_rejected(tmp_path):
    path = write_nifti(tmp_path / "series.nii.gz", np.ones((12, 12, 12, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"series.nii.gz is 4-D with shape \(12, 12, 12, 3\): give one 3-D"):
        data_module(source="nifti", root=str(path), cache_dir=str(tmp_path)).setup()


def test_mni152_without_nilearn(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "nilearn" else find_spec(name, *args)
    )
    with pytest.raises(DataError, match=r"the demo set needs nilearn: pip install -e '.\[demo\]'"):
        data_module(source="mni152", cache_dir=str(tmp_path)).setup()


# --- volumes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_volume(tmp_path_factory) -> Path:
    """48x56x40 volume: a noisy box at x 10..37, y 8..47, z 5..34 and a thin tail at x 38..40."""
    rng = np.random.default_rng(0)
    data = np.zeros((48, 56, 40), dtype=np.float32)
    data[10:38, 8:48, 5:35] = rng.uniform(500, 1000, (28, 40, 30))
    data[38:41, 20:23, 15:18] = rng.uniform(500, 1000, (3, 3, 3))  # too little foreground to keep
    return write_nifti(tmp_path_factory.mktemp("nifti") / "box.nii.gz", data)


def slices_by_plane(dm: SRDataModule) -> dict[str, list[int]]:
    found = {plane: [] for plane in dm.class_names}
    for dataset in (dm.train_set, dm.val_set, dm.test_set):
        for label, index in zip(dataset.labels.tolist(), dataset.slice_index.tolist()):
            found[dm.class_names[label]].append(index)
    return {plane: sorted(indices) for plane, indices in found.items()}


def test_nifti_slices_planes_and_foreground_filter(box_volume, tmp_path):
    dm = data_module(source="nifti", root=str(box_volume.parent), cache_dir=str(tmp_path))
    dm.setup()
    assert dm.class_names == list(PLANES)
    assert slices_by_plane(dm) == {
        "sagittal": list(range(10, 38)),
        "coronal": list(range(8, 48)),
        "axial": list(range(5, 35)),
    }
    assert dm.train_set.hr.shape[1:] == (1, 128, 128)
    assert all(path == str(box_volume) for path in dm.train_set.paths)
    loose = data_module(source="nifti", root=str(box_volume), cache_dir=str(tmp_path), min_foreground=0.0)
    loose.setup()
    assert loose.cache_path != dm.cache_path
    assert slices_by_plane(loose)["sagittal"] == list(range(10, 41))
    only_axial = data_module(source="nifti", root=str(box_volume), cache_dir=str(tmp_path), axes=["axial"])
    only_axial.setup()
    assert only_axial.class_names == ["axial"] and sum(only_axial.sizes.values()) == 30


def test_nifti_split_keeps_slice_blocks_whole(box_volume, tmp_path):
    dm = data_module(source="nifti", root=str(box_volume), cache_dir=str(tmp_path))
    dm.setup()
    blocks = []
    for dataset in (dm.train_set, dm.val_set, dm.test_set):
        assert len(dataset) > 0
        assert set(dataset.labels.tolist()) == {0, 1, 2}  # stratified by plane
        pairs = zip(dataset.labels.tolist(), dataset.slice_index.tolist())
        blocks.append({(label, index // 8) for label, index in pairs})
    assert not (blocks[0] & blocks[1]) and not (blocks[0] & blocks[2]) and not (blocks[1] & blocks[2])
    assert sum(dm.sizes.values()) == 28 + 40 + 30  # every kept slice is in exactly one split


def test_thick_slices_are_resampled_to_square_pixels(tmp_path):
    data = np.zeros((48, 56, 40), dtype=np.float32)
    data[10:38, 8:48, 5:35] = np.random.default_rng(0).uniform(500, 1000, (28, 40, 30))
    path = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 4.0, 1.0])), str(path))
    dm = data_module(source="nifti", root=str(path), axes=["coronal"], cache_dir=str(tmp_path))
    dm.setup()
    rows, columns = np.nonzero(dm.train_set.hr[0, 0].numpy())
    # The box is 28 mm wide (x) and 120 mm tall (z, 30 voxels of 4 mm), in a 136 mm crop.
    assert 100 <= rows.max() - rows.min() + 1 <= 120
    assert 20 <= columns.max() - columns.min() + 1 <= 34


def test_mni152_demo_set(tmp_path, capsys):
    dm = data_module(source="mni152", cache_dir=str(tmp_path))
    dm.setup()
    assert dm.class_names == ["sagittal", "coronal", "axial"]
    assert 250 <= sum(dm.sizes.values()) <= 500
    for dataset in (dm.train_set, dm.val_set, dm.test_set):
        assert dataset.hr.shape[1:] == (1, 128, 128)
        assert all(count > 0 for count in dataset.class_counts(3))
    # The template is left-right symmetric: mirrored sagittal slices are exact repeats.
    assert dm.repeats_removed > 0
    train, val, test = split_hashes(dm)
    assert not (train & val) and not (train & test) and not (val & test)
    assert dm.train_set.hr.float().mean() > 20  # real anatomy, not empty frames
    with capsys.disabled():
        print(f"\nMNI152 demo slices per split: {dm.sizes}")


def test_cache_is_read_once_per_run(kaggle_root, tmp_path, monkeypatch):
    import medivision.data.datamodule as datamodule_module

    calls = []
    real_load_source = datamodule_module.load_source
    monkeypatch.setattr(datamodule_module, "load_source", lambda *a: calls.append(a) or real_load_source(*a))
    dm = data_module(source="kaggle", root=str(kaggle_root), cache_dir=str(tmp_path))
    for _ in range(3):  # fit, validate, test each call prepare_data then setup
        dm.prepare_data()
        dm.setup("fit")
    assert len(calls) == 1 and dm.cache_hit is False and len(dm.train_set) > 0
