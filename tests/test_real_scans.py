"""The real-scan benchmark (data=real_scans) and the shipping gate, on the real scans inside dipy, nibabel and
matplotlib."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medivision.data.real_scans import REAL_SCAN_GROUPS, REAL_SCAN_LR, RealScan, build_real_scans, real_scan_files
from medivision.data.settings import data_module
from medivision.data.sources import DataError
from medivision.evaluate import evaluate
from medivision.report.gate import failures, group_results
from tests.clinic import compose_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("real_scans_cache")


def test_every_group_is_in_the_test_split_only(cache_dir):
    datamodule = data_module(source="real_scans", cache_dir=str(cache_dir))
    datamodule.setup("test")
    assert datamodule.sizes["train"] == 0 and datamodule.sizes["val"] == 0
    labels = datamodule.test_set.labels.tolist()
    counts = {group: labels.count(index) for index, group in enumerate(REAL_SCAN_GROUPS)}
    assert counts["t1"] == 2 and counts["b0"] == 10 and counts["low_snr"] >= 5 and counts["epi"] >= 5, counts
    hr = datamodule.test_set.hr.float() / 255
    assert hr.shape[1:] == (1, 128, 128)
    # the scans' own background is kept: the b0 slices' darkest rows are noise, not the zeros of padding
    b0 = hr[torch.tensor(labels) == REAL_SCAN_GROUPS.index("b0")]
    assert (b0[..., :4, :] > 0).float().mean() > 0.5


def test_a_missing_package_names_the_package_and_the_extra():
    with pytest.raises(DataError, match=r"needs the package no_such_scans: pip install -e '\.\[demo\]'"):
        real_scan_files([RealScan("t1", "no_such_scans", "scan.npy")])


def test_a_missing_or_unreadable_file_is_skipped_and_counted(tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a NIfTI file")
    files = [*real_scan_files()[:1], ("b0", tmp_path / "gone.nii.gz"), ("b0", broken)]
    data = build_real_scans(files, min_foreground=0.15, hr_size=64)
    assert data["skipped"] == [str(tmp_path / "gone.nii.gz"), str(broken)]
    assert len(data["skip_reasons"]) == 2 and len(data["hr"]) == 1 and data["hr"].shape[-1] == 64


def test_report_holds_each_group_and_lr_kind_and_the_gate(tiny_checkpoint, cache_dir, tmp_path):
    result = evaluate(compose_config("evaluate", [
        f"ckpt={tiny_checkpoint}", "data=real_scans", f"data.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}",
    ]))
    with open(result.csv) as file:
        rows = list(csv.DictReader(file))
    assert {(row["class"], row["lr"]) for row in rows} == {(g, k) for g in REAL_SCAN_GROUPS for k in REAL_SCAN_LR}
    assert [path.name for path in result.figures] == [f"cases_{group}.png" for group in REAL_SCAN_GROUPS]
    assert all(path.is_file() for path in result.figures)
    groups = group_results(result.rows)
    assert len(groups) == len(REAL_SCAN_GROUPS) * len(REAL_SCAN_LR)
    for group in groups:
        model = [r for r in result.rows if r["class"] == group.group and r["lr"] == group.lr and r["method"] == "model"]
        assert group.images == len(model)
        assert group.psnr == pytest.approx(np.mean([r["psnr"] for r in model]))
    assert result.gate_failures == failures(groups)
    verdict = "Shipping gate: passed" if not result.gate_failures else "Shipping gate: failed"
    assert verdict in result.report
    for group in groups:
        assert f"| {group.group} | {group.lr} | {group.images} | {group.psnr:.2f} | {group.bicubic_psnr:.2f} |" \
            in result.report


def test_the_gate_fails_a_group_below_bicubic_and_passes_one_above():
    def rows(group, lr, model, bicubic):
        return [{"class": group, "lr": lr, "method": method, "psnr": psnr, "ssim": ssim, "lr_psnr": 40.0,
                 "bg_mean": 0.01, "hr_bg_mean": 0.01}
                for method, (psnr, ssim) in (("model", model), ("bicubic", bicubic))]

    results = group_results([*rows("t1", "bicubic", (30.0, 0.90), (29.0, 0.90)),
                             *rows("b0", "kspace", (31.0, 0.80), (30.0, 0.85)),
                             *rows("epi", "kspace", (29.0, 0.95), (29.5, 0.90))])
    assert [result.passes for result in results] == [True, False, False]
    assert failures(results) == ["b0 with kspace LR: PSNR +1.00 dB, SSIM -0.0500 against bicubic",
                                 "epi with kspace LR: PSNR -0.50 dB, SSIM +0.0500 against bicubic"]
    # a group that was not measured (its files missing, or no slice left) fails: nothing passes unmeasured
    assert failures(results[:1], expected=[("t1", "bicubic"), ("low_snr", "bicubic")]) == [
        "low_snr with bicubic LR: no slices"]


@pytest.mark.slow
def test_require_gate_stops_with_one_line_naming_the_failing_group(tiny_checkpoint, cache_dir, tmp_path):
    """A two-batch model does not beat bicubic everywhere: with require_gate=true evaluate exits 1 on one line."""
    command = [sys.executable, "-m", "medivision.evaluate", f"ckpt={tiny_checkpoint}", "data=real_scans",
               f"data.cache_dir={cache_dir}", "require_gate=true", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    report = (tmp_path / "report.md").read_text()
    assert "Shipping gate: failed" in report, report[:2000]
    assert result.returncode == 1
    assert "fails the shipping gate on data=real_scans" in result.stderr and "Traceback" not in result.stderr
    assert " with bicubic LR" in result.stderr or " with kspace LR" in result.stderr
