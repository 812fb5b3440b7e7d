"""`medivision.contrast_matrix`: one column per contrast family, the template column being data=mni152's test."""

from __future__ import annotations

import csv

import pytest
from hydra.utils import instantiate

from medivision.contrast_matrix import contrast_matrix
from medivision.inference.models import load_model
from medivision.report.matrix import evaluate_on
from tests.clinic import compose_config


def test_each_family_is_a_column_and_the_template_column_is_the_real_t1(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    report, folder = contrast_matrix(compose_config("contrast_matrix", [
        f"models=[{tiny_checkpoint}]", "labels=[tiny]", "families=[template,t2]", cache, "data.limit=6",
        f"paths.output_dir={out}"]))
    assert folder == out and (out / "matrix.png").stat().st_size > 0
    with open(out / "matrix.csv") as file:
        rows = {row["family"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"template", "t2"} and rows["t2"]["model"] == "tiny"
    assert "| tiny |" in report and "bicubic" in report
    template = instantiate(compose_config("train", ["data=mni152", cache, "data.limit=6"]).data)
    direct = evaluate_on({"tiny": load_model(tiny_checkpoint)}, template)["tiny"]
    assert float(rows["template"]["psnr"]) == pytest.approx(direct["psnr"], abs=1e-4)
    assert float(rows["template"]["bicubic_psnr"]) == pytest.approx(direct["bicubic_psnr"], abs=1e-4)
    assert float(rows["t2"]["bicubic_psnr"]) != pytest.approx(direct["bicubic_psnr"], abs=1e-2)


def test_unknown_families_and_ensembles_are_refused(tiny_checkpoint, tmp_path):
    base = [f"models=[{tiny_checkpoint}]", f"paths.output_dir={tmp_path}"]
    with pytest.raises(ValueError, match=r"families=\['t3'\] must be a non-empty list of template, t1"):
        contrast_matrix(compose_config("contrast_matrix", [*base, "families=[t3]"]))
    with pytest.raises(ValueError, match="ensemble=2 must be 1"):
        contrast_matrix(compose_config("contrast_matrix", [*base, "ensemble=2"]))
