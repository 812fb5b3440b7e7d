"""Thick-slice volumes made isotropic: the through-plane pipeline, adaptation, enhance through_plane=true on real
NIfTI volumes, and the thick-slice benchmark."""

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medivision.data.slice_profile import SliceGeometry, acquire, profile_matrix
from medivision.inference.consistency import psnr, slab_consistent
from medivision.inference.models import load_model
from medivision.inference.through_plane import ThroughPlane, interpolate, slice_axis
from medivision.report.thick_slices import THICK_METHODS, gate_failures
from tests.clinic import ANATOMICAL, compose_config, real_volume, run, thick_file, write_dicom_series

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def thick_checkpoint(kaggle_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a tiny through-plane model (+experiment=general_thick), trained for 2 batches."""
    from medivision.train import train
    from tests.training import compose_train, tiny

    out = tmp_path_factory.mktemp("thick_run")
    train(compose_train(tiny(kaggle_root, out, "+experiment=general_thick", "logger=none", "test=false",
                             "data.limit=24")))
    return out / "checkpoints" / "last.ckpt"


def test_the_slice_axis_is_the_coarsest_and_odd_volumes_are_refused():
    axis, geometry = slice_axis((0.9, 0.9, 4.5), thickness=3.6)
    assert axis == 2 and geometry.spacing == pytest.approx(5.0) and geometry.thickness == pytest.approx(4.0)
    with pytest.raises(ValueError, match="about isotropic.*in-plane mode"):
        slice_axis((1.0, 1.0, 1.2))
    with pytest.raises(ValueError, match="9.0x coarser than in-plane; through_plane=true handles up to 8x"):
        slice_axis((1.0, 1.0, 9.0))
    with pytest.raises(ValueError, match="slice_thickness=6 mm must be positive and at most the slice spacing"):
        slice_axis((1.0, 1.0, 5.0), thickness=6.0)


def test_consistency_makes_the_slabs_equal_the_acquired_slices():
    truth = np.moveaxis(real_volume(), 1, 0)
    geometry = SliceGeometry(4.0, 3.0)
    slices = geometry.slices(len(truth))
    truth = truth[:geometry.pixels(slices)]
    profile = profile_matrix(geometry, len(truth), slices).astype(np.float32)
    acquired = np.tensordot(profile, truth, axes=(1, 0))
    cubic = interpolate(acquired, geometry)
    fixed = slab_consistent(cubic, acquired, geometry)
    assert psnr(np.tensordot(profile, cubic, axes=(1, 0))[None], acquired[None])[0] < 50  # B-spline is not
    assert psnr(np.tensordot(profile, fixed, axes=(1, 0))[None], acquired[None])[0] > 60
    assert psnr(fixed[None], truth[None])[0] > psnr(cubic[None], truth[None])[0]  # and it moves towards the truth


def test_identity_model_gives_the_consistent_interpolation_and_both_orientations_run():
    truth = np.moveaxis(real_volume(), 1, 0)[:40]
    geometry = SliceGeometry(4.0, 4.0)
    acquired = acquire(truth, geometry, 10)
    calls = []
    result = ThroughPlane(lambda images: calls.append(images.shape) or images, geometry)(acquired)
    start = np.clip(interpolate(acquired, geometry), 0.0, 1.0)
    np.testing.assert_allclose(result.volume, slab_consistent(start, acquired, geometry), atol=1e-6)
    assert {shape[2:] for shape in calls} == {(40, 25), (40, 33)}  # rows: the slice axis, in both orientations
    assert result.lr_psnr > 40 and not result.disagreement.any()


def test_the_disagreement_map_is_half_the_difference_of_the_two_orientations():
    truth = np.moveaxis(real_volume(), 1, 0)[:40]
    geometry = SliceGeometry(4.0, 4.0)
    acquired = acquire(truth, geometry, 10)
    # brighter by 0.02 in one orientation only (its images are 25 wide)
    result = ThroughPlane(lambda images: images + 0.02 * (images.shape[-1] == 25), geometry)(acquired)
    np.testing.assert_allclose(result.disagreement, 0.01, atol=1e-6)


def test_enhance_makes_a_thick_volume_isotropic_in_place(thick_checkpoint, tmp_path):
    source, truth = thick_file(tmp_path / "thick.nii.gz")
    summary = run(thick_checkpoint, source, tmp_path / "iso.nii.gz", "through_plane=true", "adapt=false",
                  "uncertainty=true")
    assert summary.lr_psnr[0] > 40 and len(summary.maps) == 1
    out = nib.load(str(tmp_path / "iso.nii.gz"))
    assert out.shape == truth.shape and np.allclose(out.header.get_zooms()[:3], 2.0)
    # every acquired slab's centre lies where it did: voxel j of the input, voxel offset + 4 j of the output
    given = nib.load(str(source))
    for j in (0, 5):
        np.testing.assert_allclose(given.affine @ [3, j, 4, 1], out.affine @ [3, 1.5 + 4 * j, 4, 1], atol=1e-4)
    assert out.get_data_dtype() == np.int16 and "through-plane" in out.header["descrip"].tobytes().decode()
    note = out.header.extensions[0].get_content().decode()
    assert "model estimate, not a measurement" in note and "last.ckpt" in note
    values = np.asanyarray(out.dataobj) / 1000.0
    assert psnr(values[None], truth[None])[0] > 20


def test_adaptation_fits_the_scan_and_is_named_in_the_output(thick_checkpoint, tmp_path):
    from medivision.inference.adapt import _pairs, adapt

    model = load_model(thick_checkpoint)
    acquired = np.moveaxis(real_volume(), 1, 0)[::4]
    geometry = SliceGeometry(4.0, 4.0)
    adapted = adapt(model, acquired, (geometry, geometry), seconds=60, steps=30, batch_size=8, patch=24,
                    learning_rate=1e-3)
    assert adapted.steps == 30 and adapted.best_step in (25, 30)  # the 2-batch prior is far from fit: it improves
    inputs, targets = _pairs(acquired, (geometry, geometry), model.device)

    def l1(candidate):
        return np.mean([np.abs(candidate(x.numpy()) - y.numpy()).mean() for x, y in zip(inputs, targets)])

    assert l1(adapted.model) < l1(model)  # better on the scan's own pairs than the prior it started from
    wrecked = adapt(model, acquired, (geometry, geometry), seconds=60, steps=25, batch_size=8, patch=24,
                    learning_rate=10.0)  # a rate that ruins the weights: the held-out slices keep the prior
    assert wrecked.best_step == 0
    for mine, prior in zip(wrecked.model.generator.parameters(), model.generator.parameters()):
        assert torch.equal(mine, prior)
    source, _ = thick_file(tmp_path / "thick.nii.gz")
    run(thick_checkpoint, source, tmp_path / "iso.nii.gz", "through_plane=true", "adapt=true", "adapt_seconds=2")
    note = nib.load(str(tmp_path / "iso.nii.gz")).header.extensions[0].get_content().decode()
    assert "adapted to this scan: step" in note or "not adapted:" in note


def test_a_dicom_series_is_read_as_one_volume_and_written_isotropic_in_place(thick_checkpoint, tmp_path):
    write_dicom_series(tmp_path / "series", count=6)  # 0.9 x 0.8 mm pixels, slices 5 mm apart and thick
    summary = run(thick_checkpoint, tmp_path / "series", tmp_path / "out", "through_plane=true", "adapt=false")
    assert len(summary.written) == 1 and summary.lr_psnr[0] > 40
    assert summary.written[0].parent == tmp_path / "out" and summary.written[0].name.startswith("series3_")
    out = nib.load(str(summary.written[0]))
    geometry = SliceGeometry(5.0 / 0.8, 5.0 / 0.8)
    # 6 slabs of 6.25 pixels: 37.5 output pixels, rounded either way by the float spacing of the positions
    assert out.shape[:2] == (24, 20) and out.shape[2] in (37, 38)
    assert np.allclose(out.header.get_zooms(), (0.9, 0.8, 0.8))
    # the first slice written sits at Image Position (Patient) (-100, -90, 20), LPS
    np.testing.assert_allclose(out.affine @ [0, 0, geometry.offset, 1], [100.0, 90.0, 20.0, 1], atol=1e-4)
    # array axis 0 runs down the rows (column cosines (0, 0.8, -0.6), 0.9 mm), axis 1 along them ((1, 0, 0),
    # 0.8 mm), axis 2 along the normal (0, 0.6, 0.8) at 0.8 mm; LPS to RAS negates x and y
    expected = np.diag([-1.0, -1.0, 1.0]) @ np.array([[0, 0.8, -0.6], [1, 0, 0], [0, 0.6, 0.8]]).T * [0.9, 0.8, 0.8]
    np.testing.assert_allclose(out.affine[:3, :3], expected, atol=1e-4)
    # the volume is in the modality's units: stored values in [-200, 2800], times Rescale Slope 0.5, minus 1024
    values = np.asanyarray(out.dataobj)
    assert -1124 <= values.min() and values.max() <= 376 and values.max() > 300


def test_a_series_with_unequal_slice_spacing_is_refused_in_one_line(thick_checkpoint, tmp_path):
    paths = write_dicom_series(tmp_path / "series", count=5)
    moved = pydicom.dcmread(paths[4])
    moved.ImagePositionPatient = [-100.0, -90.0 + 3.0 * 5, 20.0 + 4.0 * 5]  # 10 mm after the one before
    moved.save_as(paths[4])
    with pytest.raises(ValueError, match="not equally spaced \\(5 to 10 mm apart\\).*split the series"):
        run(thick_checkpoint, tmp_path / "series", tmp_path / "out", "through_plane=true", "adapt=false")


def test_images_are_skipped_and_a_factor_outside_training_is_warned_of(thick_checkpoint, tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    thick_file(folder / "thick7.nii.gz", factor=7)  # the prior trained on 2 to 6x
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "slice.png")
    with caplog.at_level(logging.WARNING):
        summary = run(thick_checkpoint, folder, tmp_path / "out", "through_plane=true", "adapt=false")
    assert [path.name for path in summary.written] == ["thick7.nii.gz"]
    assert summary.skipped == [(folder / "slice.png", f"{folder / 'slice.png'}: through_plane=true takes NIfTI "
                                "volumes and DICOM series; enhance images without through_plane")]
    assert "slices 7.00x coarser than in-plane: last.ckpt was trained on 2 to 6x" in caplog.text


def test_through_plane_refusals_are_one_line(thick_checkpoint, tiny_checkpoint, tmp_path):
    source, _ = thick_file(tmp_path / "thick.nii.gz")
    with pytest.raises(ValueError, match="in-plane model .*through_plane=true needs a through-plane model"):
        run(tiny_checkpoint, source, tmp_path / "a.nii.gz", "through_plane=true", "adapt=false")
    with pytest.raises(ValueError, match="degradation=slices is a through-plane model's: it serves thick-slice"):
        run(thick_checkpoint, source, tmp_path / "b.nii.gz")
    with pytest.raises(ValueError, match="about isotropic"):
        run(thick_checkpoint, ANATOMICAL, tmp_path / "c.nii.gz", "through_plane=true", "adapt=false")
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 30), np.float32), np.diag([1.0, 4.0, 1.0, 1.0])), str(flat))
    with pytest.raises(ValueError, match="a 2-D image; through_plane=true needs a volume"):
        run(thick_checkpoint, flat, tmp_path / "d.nii.gz", "through_plane=true", "adapt=false")
    with pytest.raises(ValueError, match="slice_profile='box' is not one of rect, gaussian"):
        run(thick_checkpoint, source, tmp_path / "e.nii.gz", "through_plane=true", "slice_profile=box")
    with pytest.raises(ValueError, match="adapt=true fine-tunes a .ckpt or .safetensors model"):
        run(tmp_path / "model.onnx", source, tmp_path / "f.nii.gz", "through_plane=true", "adapt=true")


@pytest.mark.slow  # a fresh interpreter imports torch: about 10 s
def test_thick_benchmark_scores_every_method_against_the_truth(thick_checkpoint, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medivision.thick_benchmark", f"ckpt={thick_checkpoint}", "volumes=[anatomical]",
         "cases=[{factor: 4}, {factor: 4, thickness: 3}]", "adapt_seconds=2", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == ["4x, 4 px rect", "4x, 3 px rect"]
    for row in rows:
        scores = {method: float(row[f"{method} psnr"]) for method in THICK_METHODS}
        assert scores["cubic B-spline"] > scores["linear"] > 20 and float(row["lr_psnr"]) > 40
        assert int(row["adapt steps"]) >= 1 and 0 < float(row["prior + adaptation ssim"]) <= 1
    report = (tmp_path / "report.md").read_text()
    assert "## anatomical" in report and "prior - cubic" in report and "not evidence" not in report
    assert (tmp_path / "reformats_anatomical.png").stat().st_size > 10_000


def test_the_gate_names_each_case_where_the_prior_does_not_beat_cubic_b_spline():
    def row(volume, prior_psnr, prior_ssim):
        return {"volume": volume, "case": "4x, 4 px rect", "prior psnr": prior_psnr, "prior ssim": prior_ssim,
                "cubic B-spline psnr": 30.0, "cubic B-spline ssim": 0.9}

    rows = [row("epi", 31.0, 0.91), row("anatomical", 31.0, 0.89), row("mni152", 29.0, 0.8)]
    assert gate_failures(rows, ["epi", "anatomical"]) == [
        "anatomical 4x, 4 px rect: prior 31.00 dB / 0.8900 against 30.00 dB / 0.9000"]  # mni152 is not evidence


def test_thick_benchmark_refuses_a_bad_case():
    from medivision.thick_benchmark import check

    with pytest.raises(ValueError, match="needs factor .* and at most that thickness"):
        check(compose_config("thick_benchmark", ["cases=[{factor: 3, thickness: 4}]"]))
    with pytest.raises(ValueError, match="volumes=\\['brain'\\] must be a non-empty list of epi"):
        check(compose_config("thick_benchmark", ["volumes=[brain]"]))
