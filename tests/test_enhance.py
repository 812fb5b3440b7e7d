"""`medivision.enhance` on real PNG/JPEG/TIFF, DICOM and NIfTI files: round trips, metadata, refusals."""

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from medivision.export import export
from tests.clinic import brain_slices, compose_config, run, write_dicom_series, write_volume

REPO = Path(__file__).resolve().parents[1]


def gray(height=23, width=31, high=255, dtype=np.uint8, low=0):
    """A brain-like slice spanning exactly [low, high]."""
    values = np.rint(low + brain_slices(1, height, width, seed=11)[0] * (high - low)).astype(dtype)
    values.flat[0], values.flat[1] = low, high
    return values


@pytest.mark.parametrize("name, pixels, out_name, out_mode", [
    ("gray8.png", gray(), "gray8.png", "L"),
    ("rgb.png", np.stack([gray(), gray()[::-1], np.full((23, 31), 40, np.uint8)], -1), "rgb.png", "RGB"),
    ("gray16.png", gray(high=60000, low=1000, dtype=np.uint16), "gray16.png", "I;16"),
    ("gray16.tif", gray(high=4095, dtype=np.uint16), "gray16.tif", "I;16"),
    ("photo.jpg", gray(), "photo.png", "L"),
])
def test_images_keep_mode_and_range_at_four_times_the_size(tiny_checkpoint, tmp_path, name, pixels, out_name,
                                                           out_mode):
    source = tmp_path / name
    Image.fromarray(pixels).save(source)
    stored = np.asarray(Image.open(source))
    (tmp_path / "out").mkdir()
    report = run(tiny_checkpoint, source, tmp_path / "out")
    assert report.written == [tmp_path / "out" / out_name] and len(report.lr_psnr) == 1
    with Image.open(report.written[0]) as image:
        assert image.mode == out_mode and image.size == (31 * 4, 23 * 4)
        note = image.text["Description"] if image.format == "PNG" else image.tag_v2[270]
        result = np.asarray(image)
    assert "model estimate, not a measurement" in note
    assert result.dtype == stored.dtype
    assert stored.min() <= result.min() and result.max() <= stored.max()  # inside the input's range
    # the output uses the input's range (no 8-bit clipping of 16-bit data, no squashing of 8-bit data)
    assert result.max() - result.min() > 0.5 * (int(stored.max()) - int(stored.min()))


def test_large_images_are_tiled(tiny_checkpoint, tmp_path):
    source = tmp_path / "large.png"
    Image.fromarray(gray(150, 140, high=65535, dtype=np.uint16)).save(source)
    whole = np.asarray(Image.open(run(tiny_checkpoint, source, tmp_path / "whole.png").written[0]), dtype=float)
    tiled = np.asarray(Image.open(run(tiny_checkpoint, source, tmp_path / "tiled.png", "tile=64",
                                      "overlap=16").written[0]), dtype=float)
    assert tiled.shape == whole.shape == (600, 560)
    # CBAM pools each tile's own features, so tiles differ slightly from the whole image, but only slightly
    assert np.abs(tiled - whole).mean() < 0.001 * 65535


def test_folder_output_mirrors_the_tree(tiny_checkpoint, tmp_path):
    source = tmp_path / "scans"
    (source / "sub").mkdir(parents=True)
    Image.fromarray(gray()).save(source / "a.png")
    Image.fromarray(gray()).save(source / "sub" / "b.jpg")
    (source / "notes.txt").write_text("not an image")
    report = run(tiny_checkpoint, source, tmp_path / "out")
    assert sorted(report.written) == [tmp_path / "out" / "a.png", tmp_path / "out" / "sub" / "b.png"]
    assert report.ignored == 1 and "ignored 1 files" in report.summary()


def test_dicom_series_becomes_a_new_derived_series(tiny_checkpoint, tmp_path):
    sources = write_dicom_series(tmp_path / "series", count=3)
    report = run(tiny_checkpoint, tmp_path / "series", tmp_path / "out")
    assert sorted(report.written) == [tmp_path / "out" / path.name for path in sources]
    originals = [pydicom.dcmread(path) for path in sources]
    outputs = [pydicom.dcmread(tmp_path / "out" / path.name) for path in sources]
    stored_low = min(int(ds.pixel_array.min()) for ds in originals)
    stored_high = max(int(ds.pixel_array.max()) for ds in originals)
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1
    assert outputs[0].SeriesInstanceUID != originals[0].SeriesInstanceUID
    for source, derived in zip(originals, outputs):
        assert derived.SOPInstanceUID not in {ds.SOPInstanceUID for ds in originals}
        assert derived.file_meta.MediaStorageSOPInstanceUID == derived.SOPInstanceUID
        assert derived.StudyInstanceUID == source.StudyInstanceUID and derived.PatientID == source.PatientID
        assert list(derived.ImageType) == ["DERIVED", "SECONDARY", "M", "ND"]
        assert (derived.Rows, derived.Columns) == (source.Rows * 4, source.Columns * 4)
        assert [float(v) for v in derived.PixelSpacing] == pytest.approx([0.225, 0.2])
        assert "model estimate" in derived.SeriesDescription and "T1 axial" in derived.SeriesDescription
        assert "not a measurement" in derived.ImageComments and "not a measurement" in derived.DerivationDescription
        assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert (derived.RescaleSlope, derived.RescaleIntercept) == (source.RescaleSlope, source.RescaleIntercept)
        pixels = derived.pixel_array
        assert pixels.dtype == np.int16 and pixels.shape == (source.Rows * 4, source.Columns * 4)
        assert stored_low <= pixels.min() and pixels.max() <= stored_high and pixels.max() > 1000
        # the centre of the first finer pixel lies 3/8 of a source pixel up and left of the source's
        shift = -0.375 * (0.8 * np.array([1, 0, 0]) + 0.9 * np.array([0, 0.8, -0.6]))
        expected = np.array([float(v) for v in source.ImagePositionPatient]) + shift
        assert [float(v) for v in derived.ImagePositionPatient] == pytest.approx(expected.tolist(), abs=1e-4)


def test_dicom_as_png_records_how_to_get_stored_values_back(tiny_checkpoint, tmp_path):
    (source,) = write_dicom_series(tmp_path / "one", count=1, low=-200, high=2800)
    report = run(tiny_checkpoint, source, tmp_path / "slice.png", "dicom_format=png")
    with Image.open(report.written[0]) as image:
        assert image.mode == "I;16" and image.size == (80, 96)
        assert image.text["Intensity"] == ("stored value = -200 + png / 65535 * 3000; "
                                           "modality value = 0.5 * stored + -1024")
        assert "not a measurement" in image.text["Description"]


def test_dicom_files_without_suffix_are_found_by_their_preamble(tiny_checkpoint, tmp_path):
    write_dicom_series(tmp_path / "series", count=2, with_suffix=False)
    report = run(tiny_checkpoint, tmp_path / "series", tmp_path / "out")
    assert sorted(path.name for path in report.written) == ["IM0000", "IM0001"]


def test_nifti_volume_in_plane_with_geometry_updated(tiny_checkpoint, tmp_path):
    source = write_volume(tmp_path / "t1.nii.gz", shape=(20, 24, 3), dtype=np.int16, high=3000)
    report = run(tiny_checkpoint, tmp_path / "t1.nii.gz", tmp_path / "t1_sr.nii.gz")
    assert len(report.lr_psnr) == 3
    result = nib.load(str(report.written[0]))
    assert result.shape == (80, 96, 3) and result.get_data_dtype() == np.int16
    assert result.header.get_zooms() == pytest.approx((0.225, 0.2, 3.0))
    # finer voxel (4i + 1.5, 4j + 1.5, k) is the centre of the source voxel (i, j, k): the volume stays put
    for i, j, k in ((0, 0, 0), (5, 7, 2), (19, 23, 1)):
        finer = result.affine @ [4 * i + 1.5, 4 * j + 1.5, k, 1]
        assert finer == pytest.approx(source.affine @ [i, j, k, 1], abs=1e-4)
    assert b"model estimate, not a measurement" in result.header["descrip"].tobytes()
    data, stored = np.asarray(result.dataobj), np.asarray(source.dataobj)
    assert stored.min() <= data.min() and data.max() <= stored.max() and data.max() > 2000


def test_nifti_float_volume_along_another_axis(tiny_checkpoint, tmp_path):
    write_volume(tmp_path / "pd.nii", shape=(3, 16, 12), dtype=np.float32, high=1.7)
    report = run(tiny_checkpoint, tmp_path / "pd.nii", tmp_path / "pd_sr.nii", "axis=0")
    result = nib.load(str(report.written[0]))
    assert result.shape == (3, 64, 48) and result.get_data_dtype() == np.float32
    assert result.header.get_zooms() == pytest.approx((0.9, 0.2, 0.75))
    assert 0 <= result.get_fdata().min() and result.get_fdata().max() <= 1.7 + 1e-6


def test_onnx_file_enhances_like_the_checkpoint(tiny_checkpoint, tmp_path):
    onnx_file = tmp_path / "tiny.onnx"
    export(compose_config("export", [f"ckpt={tiny_checkpoint}", f"output={onnx_file}"]))
    source = tmp_path / "in.png"
    Image.fromarray(gray(high=65535, dtype=np.uint16)).save(source)
    by_torch = np.asarray(Image.open(run(tiny_checkpoint, source, tmp_path / "torch.png").written[0]), dtype=int)
    by_onnx = np.asarray(Image.open(run(onnx_file, source, tmp_path / "onnx.png").written[0]), dtype=int)
    assert np.abs(by_torch - by_onnx).max() <= 1

    with pytest.raises(ValueError, match="precision=bf16 applies to checkpoints and model files; tiny.onnx is an ONNX"):
        run(onnx_file, source, tmp_path / "onnx_bf16.png", "precision=bf16")


def test_bf16_enhances_close_to_fp32(tiny_checkpoint, tmp_path):
    write_volume(tmp_path / "v.nii.gz", shape=(16, 16, 4), dtype=np.float32, high=1.0)
    fp32 = nib.load(str(run(tiny_checkpoint, tmp_path / "v.nii.gz", tmp_path / "fp32.nii.gz").written[0]))
    bf16 = nib.load(str(run(tiny_checkpoint, tmp_path / "v.nii.gz", tmp_path / "bf16.nii.gz",
                            "precision=bf16").written[0]))
    difference = np.abs(bf16.get_fdata() - fp32.get_fdata())
    assert bf16.get_data_dtype() == np.float32 and 0 < difference.max() < 0.02  # bf16 ran, and stayed close
    with pytest.raises(ValueError, match="precision='half' is not one of fp32, bf16"):
        run(tiny_checkpoint, tmp_path / "v.nii.gz", tmp_path / "half.nii.gz", "precision=half")


def test_consistency_moves_outputs_towards_the_input(tiny_checkpoint, tmp_path):
    write_volume(tmp_path / "v.nii.gz", shape=(16, 16, 4), dtype=np.float32, high=1.0)
    plain = run(tiny_checkpoint, tmp_path / "v.nii.gz", tmp_path / "plain.nii.gz")
    consistent = run(tiny_checkpoint, tmp_path / "v.nii.gz", tmp_path / "consistent.nii.gz", "consistency=true")
    assert np.mean(consistent.lr_psnr) > np.mean(plain.lr_psnr) + 5


def test_existing_output_is_kept_unless_overwrite(tiny_checkpoint, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(gray()).save(source)
    existing = tmp_path / "out.png"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="output .*out.png already exists: choose another output, or pass "
                                         "overwrite=true"):
        run(tiny_checkpoint, source, existing)
    assert existing.read_bytes() == b"keep me"
    run(tiny_checkpoint, source, existing, "overwrite=true")
    assert Image.open(existing).size == (124, 92)


def test_input_is_never_overwritten(tiny_checkpoint, tmp_path):
    volume = tmp_path / "t1.nii.gz"
    write_volume(volume)
    for output in (volume, tmp_path):  # the file itself, or its own folder (same name inside)
        with pytest.raises(ValueError, match="is the input|would overwrite an input file"):
            run(tiny_checkpoint, volume, output, "overwrite=true")


def test_output_inside_the_input_folder_needs_permission(tiny_checkpoint, tmp_path):
    source = tmp_path / "scans"
    source.mkdir()
    Image.fromarray(gray()).save(source / "a.png")
    with pytest.raises(ValueError, match="is inside the input folder .* pass allow_inside_input=true"):
        run(tiny_checkpoint, source, source / "sr")
    first = run(tiny_checkpoint, source, source / "sr", "allow_inside_input=true")
    again = run(tiny_checkpoint, source, source / "sr", "allow_inside_input=true", "overwrite=true")
    assert first.written == again.written == [source / "sr" / "a.png"]  # its own outputs are not inputs


def test_unreadable_dicom(tiny_checkpoint, tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 64 + b"not dicom at all")
    with pytest.raises(ValueError, match="broken.dcm cannot be read as DICOM"):
        run(tiny_checkpoint, broken, tmp_path / "out.dcm")


def test_dicom_without_pixel_data(tiny_checkpoint, tmp_path):
    (path,) = write_dicom_series(tmp_path / "one", count=1)
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    report_file = tmp_path / "report.dcm"
    dataset.save_as(report_file)
    with pytest.raises(ValueError, match="report.dcm has no pixel data"):
        run(tiny_checkpoint, report_file, tmp_path / "out.dcm")


def test_bad_files_in_a_folder_are_skipped_and_counted(tiny_checkpoint, tmp_path):
    write_dicom_series(tmp_path / "series", count=2)
    (tmp_path / "series" / "broken.dcm").write_bytes(b"garbage")
    report = run(tiny_checkpoint, tmp_path / "series", tmp_path / "out")
    assert len(report.written) == 2 and [path.name for path, _ in report.skipped] == ["broken.dcm"]
    assert "skipped 1 of 3 files" in report.summary()


def test_four_dimensional_nifti(tiny_checkpoint, tmp_path):
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 5), np.float32), np.eye(4)), str(path))
    with pytest.raises(ValueError, match="bold.nii.gz is 4-D with shape \\(8, 8, 4, 5\\): give one 3-D volume"):
        run(tiny_checkpoint, path, tmp_path / "out.nii.gz")


def test_empty_folder(tiny_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no PNG/JPEG/TIFF images, NIfTI volumes"):
        run(tiny_checkpoint, tmp_path / "empty", tmp_path / "out")


@pytest.mark.slow  # a fresh interpreter imports torch and Lightning: about 5 s
def test_command_line_error_is_one_line(tiny_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "medivision.enhance", f"ckpt={tiny_checkpoint}", f"input={tmp_path / 'empty'}",
         f"output={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"medivision.enhance: input={tmp_path / 'empty'} holds no PNG/JPEG/TIFF images, NIfTI volumes "
        "(.nii/.nii.gz) or DICOM files (.dcm or with a DICM preamble) (searched recursively)"]
