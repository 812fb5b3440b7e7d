"""The command line in front of Hydra: each command's own --help, one line for a misspelt or missing key; and what
enhance writes for people to read: a visible 8-bit uncertainty map and the model named in full in NIfTI files."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medivision.io.command_line import argument_problem, help_text
from medivision.io.nifti import COMMENT_EXTENSION
from tests.clinic import brain_slices, run
from tests.test_bad_input import run_command


@pytest.mark.parametrize("name", ["enhance", "train", "evaluate", "export", "benchmark"])
def test_help_says_what_the_command_does_and_lists_its_own_keys_with_their_comments(name, tmp_path):
    result = run_command([f"medivision.{name}", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"`python -m medivision.{name}")
    keys = result.stdout.split("Keys, with their defaults")[1].split("Config groups")[0]
    assert "\n  hydra:" not in keys and "\n  defaults:" not in keys
    if name == "enhance":
        assert "  ensemble: 1                # 1 | 8: average the outputs of the 8 flips/rotations" in result.stdout
        assert "trainer" not in result.stdout and "Config groups" not in result.stdout  # no groups enhance rejects
    if name == "train":
        assert re.search(r"^  trainer: cpu, ddp, ddp_cpu, default, gpu, gpu_fast$", result.stdout, re.MULTILINE)


def test_a_misspelt_key_names_the_key_it_is_next_to_and_the_plus_route_is_refused(tmp_path):
    for argument in ("ensmble=8", "+ensmble=8"):
        result = run_command(["medivision.enhance", "input=a.png", "output=b.png", argument], tmp_path)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.strip() == ("medivision.enhance: ensmble is not a key of enhance (did you mean "
                                         "ensemble=? see --help for its keys); keys are not added with +, so that a "
                                         "misspelt one cannot go unnoticed")


def test_a_missing_output_is_one_line_naming_the_key_and_what_it_takes(tmp_path):
    result = run_command(["medivision.enhance", "input=a.png"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("medivision.enhance: output= is missing: pass output=... (a file for a file "
                                     "input (or an existing folder), a folder for a folder input)")


def test_keys_inside_groups_experiments_and_hydra_pass_the_check():
    assert argument_problem("train", ["+experiment=demo", "model.generator.blocks=2", "trainer=cpu",
                                      "+trainer.max_time=00:00:01:00", "hydra.run.dir=x", "-m", "--cfg", "job"]) is None
    assert argument_problem("evaluate", ["data=mni152", "ckpt=x.ckpt"]) is None
    assert "is not a key of train (did you mean seed=?" in argument_problem("train", ["sed=3"])
    assert "trainer" not in help_text("enhance", "summary")


def test_an_8_bit_uncertainty_map_is_stretched_to_be_seen_and_says_its_scale(tiny_checkpoint, tmp_path):
    source = tmp_path / "slice.png"
    Image.fromarray((brain_slices(1, 24, 20)[0] * 255).astype(np.uint8)).save(source)
    run(tiny_checkpoint, source, tmp_path / "sr.png", "ensemble=8", "uncertainty=true")
    written = Image.open(tmp_path / "sr_uncertainty.png")
    values = np.asarray(written)
    assert values.dtype == np.uint8 and values.max() == 255  # the largest spread is stored as 255
    gain = float(re.search(r"value = 0 \+ unit \* ([\d.e+]+) \(uint8\)", written.text["Intensity"]).group(1))
    assert gain > 255  # the std, in [0, 1] units of the image's range, is value / gain
    assert re.search(r"1 unit = \d+ of its values", written.text["Intensity"])  # minmax: the image's own range


def test_nifti_outputs_name_the_model_in_full_in_a_comment_extension(tiny_checkpoint, tmp_path):
    volume = (brain_slices(3, 16, 16).transpose(1, 2, 0) * 1000).astype(np.int16)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "volume.nii.gz")
    run(tiny_checkpoint, tmp_path / "volume.nii.gz", tmp_path / "sr.nii.gz", "ensemble=8", "uncertainty=true")
    for name, phrase in (("sr.nii.gz", "a model estimate, not a measurement (model last.ckpt)"),
                         ("sr_uncertainty.nii.gz", "not an error bar (model last.ckpt)")):
        header = nib.load(tmp_path / name).header
        (comment,) = [ext for ext in header.extensions if ext.get_code() == COMMENT_EXTENSION]
        note = comment.get_content().decode()
        assert phrase in note and len(note) > 79
        assert header["descrip"].item().decode() == note[:79]  # the 80-byte field holds only its start
