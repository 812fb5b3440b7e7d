"""The degradation ablation and its cross-degradation matrix on tiny runs: every cell is what evaluate measures."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from PIL import Image

from medivision.degradation_matrix import degradation_matrix
from medivision.evaluate import evaluate
from tests.clinic import compose_config
from tests.training import REPO, tiny

EVALUATED = ["bicubic", "kspace_noise", "blur_noise"]


@pytest.fixture(scope="module")
def sweep(kaggle_root, tmp_path_factory):
    """`+experiment=degradation_ablation` restricted to two training degradations, tiny models, run once."""
    folder = tmp_path_factory.mktemp("degradation_ablation") / "sweep"
    command = [sys.executable, "-m", "medivision.train", "+experiment=degradation_ablation",
               "data.degradation=bicubic,kspace_noise",
               *tiny(kaggle_root, folder, "model.pretrain_epochs=1", "logger=none", "test=false", multirun=True)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def data_overrides(kaggle_root, cache):
    return [f"data.root={kaggle_root}", f"data.cache_dir={cache}", "data.num_workers=0", "data.batch_size=4"]


@pytest.mark.slow
def test_matrix_cells_are_what_evaluate_measures(sweep, kaggle_root, tmp_path):
    assert sorted(path.name for path in sweep.glob("*_degradation=*")) == [
        "0_degradation=bicubic_seed=42", "1_degradation=kspace_noise_seed=42"]
    cfg = compose_config("degradation_matrix", [f"runs={sweep}", f"paths.output_dir={tmp_path / 'matrix'}",
                                                f"degradations=[{','.join(EVALUATED)}]",
                                                *data_overrides(kaggle_root, tmp_path / "cache")])
    report, folder = degradation_matrix(cfg)
    with open(folder / "matrix.csv") as file:
        rows = list(csv.DictReader(file))
    cells = {(row["trained_on"], row["evaluated_on"]): row for row in rows}
    assert set(cells) == {(trained, evaluated) for trained in ("bicubic", "kspace_noise") for evaluated in EVALUATED}
    for evaluated in EVALUATED:  # both models saw the same LR images: one bicubic baseline per column
        assert cells[("bicubic", evaluated)]["bicubic_psnr"] == cells[("kspace_noise", evaluated)]["bicubic_psnr"]
    assert len({cells[("bicubic", e)]["bicubic_psnr"] for e in EVALUATED}) == 3

    checkpoint = cells[("bicubic", "kspace_noise")]["checkpoint"]
    assert "0_degradation=bicubic" in checkpoint and "best-epoch000.ckpt" in checkpoint
    result = evaluate(compose_config("evaluate", [f"ckpt='{checkpoint}'", f"paths.output_dir={tmp_path / 'evaluate'}",
                                                  "data.degradation=kspace_noise",
                                                  *data_overrides(kaggle_root, tmp_path / "cache")]))
    for method, prefix in (("model", ""), ("bicubic", "bicubic_")):
        mine = [row for row in result.rows if row["method"] == method]
        for metric in ("psnr", "ssim"):
            expected = sum(row[metric] for row in mine) / len(mine)
            assert float(cells[("bicubic", "kspace_noise")][prefix + metric]) == pytest.approx(expected, abs=1e-5)
    assert int(cells[("bicubic", "kspace_noise")]["images"]) == len(mine) == 9

    cell = cells[("kspace_noise", "blur_noise")]
    assert (f"| kspace_noise | {float(cells[('kspace_noise', 'bicubic')]['psnr']):.2f} / " in report
            and f"(bicubic {float(cell['bicubic_psnr']):.2f} / {float(cell['bicubic_ssim']):.4f}) |" in report)
    assert (folder / "matrix.md").read_text() == report
    with Image.open(folder / "matrix.png") as figure:
        assert figure.width > figure.height > 150


def test_bad_matrix_arguments_name_what_to_pass(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    message = r"runs=\S*empty holds no training runs .*\+experiment=degradation_ablation"
    with pytest.raises(FileNotFoundError, match=message):
        degradation_matrix(compose_config("degradation_matrix", [f"runs={empty}", "data=mni152"]))
    with pytest.raises(ValueError, match=r"degradations=\['jpeg'\] must be a non-empty list of bicubic, kspace"):
        degradation_matrix(compose_config("degradation_matrix", [f"runs={empty}", "data=mni152", "degradations=[jpeg]",
                                                                 "checkpoint=best"]))
