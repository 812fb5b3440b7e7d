"""The attention ablation as a real Hydra multirun in a subprocess (variants x seeds, offline W&B runs),
and the comparison of its runs."""

import csv
import math
import statistics

import pytest

from medivision.compare import compare, main
from medivision.report.run_comparison import learning_curve
from medivision.report.wandb_files import find_run_logs, read_run

VARIANTS = ["cbam", "channel", "none", "spatial"]
SEEDS = [1, 2]


@pytest.mark.slow
def test_cbam_ablation_runs_variants_times_seeds_as_grouped_wandb_runs(ablation_dir):
    runs = [read_run(log) for log in find_run_logs(ablation_dir)]
    assert sorted(run["name"] for run in runs) == [f"attention={v},seed={s}" for v in VARIANTS for s in SEEDS]
    assert {(run["group"], run["job_type"]) for run in runs} == {("cbam_ablation", "train")}
    assert len({run["id"] for run in runs}) == len(VARIANTS) * len(SEEDS)
    for run in runs:
        logged = {key for row in run["history"] for key in row}
        assert {"val/psnr", "val/ssim", "val/bicubic_psnr", "val/bicubic_ssim"} <= logged
        assert any(key.startswith("val/samples") for key in logged)
        assert run["name"] == (f"attention={run['config']['model']['generator']['attention']},"
                               f"seed={run['config']['seed']}")
        assert "+experiment=cbam_ablation" in run["config"]["overrides"]
    job_dirs = sorted(ablation_dir.glob("*_attention=*_seed=*"))
    assert len(job_dirs) == 8 and all((d / "checkpoints" / "last.ckpt").is_file() for d in job_dirs)


@pytest.mark.slow
def test_compare_reports_every_run_and_the_spread_over_seeds(ablation_dir, tmp_path):
    rows, summary, out = compare(str(ablation_dir), tmp_path / "comparison")
    assert len(rows) == 8 and len(summary) == 4
    assert sorted(entry["settings"] for entry in summary) == [f"model.generator.attention={v}" for v in VARIANTS]
    runs = {run["name"]: run for run in map(read_run, find_run_logs(ablation_dir))}
    for row in rows:  # each row's best PSNR is the maximum over that run's logged validations
        logged = [r["val/psnr"] for r in runs[row["run"]]["history"] if "val/psnr" in r]
        assert row["val/psnr"] == max(logged) and row["experiment"] == "cbam_ablation"
        assert row["val/psnr_gain"] == pytest.approx(row["val/psnr"] - row["val/bicubic_psnr"])
        # one epoch was trained: one point, not also train.py's final validation of the best checkpoint
        assert learning_curve(runs[row["run"]]) == [(0, logged[0])] and len(logged) == 2
    for entry in summary:
        members = [r["val/psnr"] for r in rows if r["settings"] == entry["settings"]]
        assert entry["n"] == 2 and entry["seeds"] == ["1", "2"]
        assert entry["val/psnr"] == pytest.approx(statistics.fmean(members))
        assert entry["val/psnr_std"] == pytest.approx(statistics.stdev(members))
    with open(out / "runs.csv") as file:
        assert [row["run"] for row in csv.DictReader(file)] == [row["run"] for row in rows]
    page = (out / "comparison.md").read_text()
    best = summary[0]
    assert f"{best['val/psnr']:.2f} ± {best['val/psnr_std']:.2f}" in page
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the learning curves
    assert not any(math.isnan(entry["val/ssim"]) for entry in summary)


@pytest.mark.slow
def test_compare_finds_a_group_among_local_runs(ablation_dir, tmp_path, capsys):
    main(["cbam_ablation", "--runs-root", str(ablation_dir), "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert printed.count("| cbam_ablation | model.generator.attention=") == 4
    with pytest.raises(SystemExit):
        main(["no_such_group", "--runs-root", str(ablation_dir), "--out", str(tmp_path)])
    assert "no runs found for 'no_such_group'" in capsys.readouterr().err
