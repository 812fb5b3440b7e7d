"""NIfTI outputs: the finer grid in both qform and sform under the input's codes, cal_min/cal_max of the new data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from medivision.io import nifti as nifti_files

ANATOMICAL = Path(data_path) / "anatomical.nii"  # a real 2 mm T1 volume (qform and sform code 2) shipped with nibabel
SCALE = 4


def enhanced(source: Path, out: Path, axis: int = 2) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """The source and what derive + write_nifti make of it, read back: a nearest-neighbour 4x volume, dimmer
    than the source so a copied cal_min/cal_max would show."""
    image, stored = nifti_files.read_nifti(source)
    repeats = [1 if a == axis else SCALE for a in range(3)]
    volume = (np.kron(stored, np.ones(repeats)) // 2).astype(stored.dtype)
    grid = nifti_files.in_plane_grid(axis, SCALE)
    nifti_files.write_nifti(out, nifti_files.derive(image, volume, grid, "a model estimate"))
    return image, nib.load(str(out))


def write_with_codes(path: Path, qform_code: int, sform_code: int, same_space: bool = True) -> Path:
    """A small int16 volume with an oblique affine, the given form codes and a stale display range; with
    same_space=False the sform places it elsewhere (as a registration to a template would)."""
    zooms = [0.9, 1.1, 3.0]
    qform = nib.affines.from_matvec(nib.eulerangles.euler2mat(0.3, -0.2, 0.1) * zooms, [-40.0, 25.0, 12.5])
    sform = qform if same_space else nib.affines.from_matvec(
        nib.eulerangles.euler2mat(-0.1, 0.05, 0.4) * zooms, [90.0, -120.0, -60.0])
    image = nib.Nifti1Image(np.arange(6 * 5 * 3, dtype=np.int16).reshape(6, 5, 3) * 10, sform)
    image.set_qform(qform, qform_code)
    image.set_sform(sform, sform_code)
    image.header["cal_min"], image.header["cal_max"] = 0.0, 5000.0
    nib.save(image, str(path))
    return path


def assert_finer_grid_in_both_forms(source: nib.Nifti1Image, result: nib.Nifti1Image, axis: int = 2) -> None:
    assert int(result.header["qform_code"]) == int(source.header["qform_code"])
    assert int(result.header["sform_code"]) == int(source.header["sform_code"])
    # finer voxel SCALE*i + 1.5 in-plane is the centre of source voxel i, in each form's own space
    for form in ("get_qform", "get_sform"):
        before, after = getattr(source.header, form)(), getattr(result.header, form)()
        for index in ((0, 0, 0), (3, 2, 1), (5, 4, 2)):
            finer = [v if a == axis else SCALE * v + (SCALE - 1) / 2 for a, v in enumerate(index)]
            np.testing.assert_allclose(after @ [*finer, 1], before @ [*index, 1], atol=1e-4)
    np.testing.assert_allclose(result.affine, result.header.get_best_affine(), atol=1e-4)


def assert_display_range_is_the_data(result: nib.Nifti1Image) -> None:
    data = np.asanyarray(result.dataobj)
    assert (float(result.header["cal_min"]), float(result.header["cal_max"])) == (data.min(), data.max())


def test_anatomical_volume_keeps_its_codes_and_gets_its_own_display_range(tmp_path):
    source, result = enhanced(ANATOMICAL, tmp_path / "anatomical_sr.nii")
    assert result.shape == (33 * SCALE, 41 * SCALE, 25) and result.get_data_dtype() == source.get_data_dtype()
    assert_finer_grid_in_both_forms(source, result)
    assert_display_range_is_the_data(result)


@pytest.mark.parametrize(("qform_code", "sform_code", "axis"), [(1, 1, 2), (0, 2, 2), (1, 0, 0), (2, 4, 1)])
def test_form_codes_of_the_input_are_kept(qform_code, sform_code, axis, tmp_path):
    path = write_with_codes(tmp_path / "in.nii.gz", qform_code, sform_code)
    source, result = enhanced(path, tmp_path / "out.nii.gz", axis)
    assert_finer_grid_in_both_forms(source, result, axis)
    assert_display_range_is_the_data(result)
    assert float(result.header["cal_max"]) < 5000.0  # not the input's stale range


def test_qform_and_sform_in_different_spaces_each_keep_their_own(tmp_path):
    path = write_with_codes(tmp_path / "in.nii.gz", qform_code=1, sform_code=4, same_space=False)
    source, result = enhanced(path, tmp_path / "out.nii.gz")
    assert not np.allclose(source.header.get_qform(), source.header.get_sform(), atol=1)
    assert_finer_grid_in_both_forms(source, result)
