"""ensemble=8 and uncertainty=true in enhance (PNG, NIfTI, real DICOM) and evaluate."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medivision.enhance import enhance
from medivision.evaluate import evaluate
from medivision.io.errors import one_line_errors
from tests.clinic import brain_slices, compose_config, run


def test_png_gets_an_uncertainty_map_beside_it_labelled_as_such(tiny_checkpoint, tmp_path):
    source = tmp_path / "slice.png"
    Image.fromarray((brain_slices(1, 40, 36)[0] * 255).astype(np.uint8)).save(source)
    single = run(tiny_checkpoint, source, tmp_path / "single.png")
    report = run(tiny_checkpoint, source, tmp_path / "sr.png", "ensemble=8", "uncertainty=true")
    spread_file = tmp_path / "sr_uncertainty.png"
    assert report.written == [tmp_path / "sr.png"] and report.maps == [spread_file]
    spread = Image.open(spread_file)
    assert spread.size == (144, 160) and spread.mode == "L"
    assert "uncertainty map: std of 8 self-ensemble outputs" in spread.text["Description"]
    assert "not an error bar" in spread.text["Description"]
    assert np.asarray(spread).max() > 0
    ensembled = np.asarray(Image.open(tmp_path / "sr.png"), dtype=float)
    assert 0 < np.abs(ensembled - np.asarray(Image.open(tmp_path / "single.png"), dtype=float)).mean() < 20
    summary = report.summary()
    assert "(8-fold self-ensemble)" in summary and "uncertainty maps" in summary
    assert len(single.maps) == 0


def test_nifti_and_real_dicom_maps_are_written_in_the_input_format(tiny_checkpoint, tmp_path):
    volume = (brain_slices(3, 20, 24) * 1000).astype(np.int16).transpose(1, 2, 0)
    nifti = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2.0, 3.0, 1.0])), nifti)
    run(tiny_checkpoint, nifti, tmp_path / "sr.nii.gz", "ensemble=8", "uncertainty=true")
    spread = nib.load(tmp_path / "sr_uncertainty.nii.gz")
    assert spread.shape == (80, 96, 3) and np.asarray(spread.dataobj).max() > 0
    assert spread.header["descrip"].tobytes().startswith(b"MediVision uncertainty map")
    np.testing.assert_allclose(spread.header.get_zooms(), (0.5, 0.5, 3.0))

    dicom = get_testdata_file("MR_small.dcm", download=False)
    run(tiny_checkpoint, dicom, tmp_path / "mr.dcm", "ensemble=8", "uncertainty=true")
    image, spread = pydicom.dcmread(tmp_path / "mr.dcm"), pydicom.dcmread(tmp_path / "mr_uncertainty.dcm")
    source = pydicom.dcmread(dicom)
    assert spread.Rows == image.Rows == 4 * source.Rows
    assert spread.SeriesInstanceUID not in (image.SeriesInstanceUID, source.SeriesInstanceUID)
    assert spread.SeriesDescription.startswith("Uncertainty of SR 4x estimate")
    assert "uncertainty map" in spread.ImageComments and spread.PatientID == source.PatientID
    assert spread.pixel_array.max() > 0 and spread.pixel_array.min() >= 0


@pytest.mark.parametrize(("extra", "message"), [
    (["ensemble=4"], "ensemble=4 must be 1 (one pass) or 8 (the 8 flips/rotations, averaged)"),
    (["uncertainty=true"], "uncertainty=true maps the spread of the 8 self-ensemble outputs: pass ensemble=8"),
])
def test_bad_ensemble_settings_get_one_line(tiny_checkpoint, tmp_path, capsys, extra, message):
    source = tmp_path / "slice.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(source)

    @one_line_errors("medivision.enhance")
    def go():
        enhance(compose_config("enhance", [f"ckpt={tiny_checkpoint}", f"input={source}",
                                           f"output={tmp_path / 'out.png'}", *extra]))

    with pytest.raises(SystemExit):
        go()
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_an_existing_uncertainty_file_is_not_overwritten(tiny_checkpoint, tmp_path):
    source = tmp_path / "slice.png"
    Image.fromarray((brain_slices(1, 16, 16)[0] * 255).astype(np.uint8)).save(source)
    (tmp_path / "sr_uncertainty.png").write_text("precious")
    with pytest.raises(ValueError, match="sr_uncertainty.png already exists"):
        run(tiny_checkpoint, source, tmp_path / "sr.png", "ensemble=8", "uncertainty=true")
    assert (tmp_path / "sr_uncertainty.png").read_text() == "precious" and not (tmp_path / "sr.png").exists()


def test_evaluate_reports_the_ensemble_its_cost_and_how_the_map_meets_the_error(tiny_checkpoint, kaggle_root,
                                                                               tmp_path):
    out = tmp_path / "out"
    result = evaluate(compose_config("evaluate", [
        f"ckpt={tiny_checkpoint}", f"data.root={kaggle_root}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0", "data.batch_size=4", f"paths.output_dir={out}", "ensemble=8"]))
    assert result.methods == ["model", "model + ensemble", "bicubic"]
    assert result.seconds["model + ensemble"] > result.seconds["model"] > 0
    assert "## 8-fold self-ensemble: model + ensemble minus model" in result.report
    assert "## Uncertainty map vs error (model + ensemble, brain pixels)" in result.report
    with open(out / "uncertainty.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len({row["image"] for row in result.rows})
    correlations = [float(row["corr"]) for row in rows]
    assert all(-1 <= value <= 1 for value in correlations)
    assert all(float(row["error_most"]) >= 0 and float(row["uncertainty"]) > 0 for row in rows)
