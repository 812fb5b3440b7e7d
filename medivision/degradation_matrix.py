"""`python -m medivision.degradation_matrix runs=SWEEP_DIR [data=...]`: trained on one degradation, tested on each.

SWEEP_DIR is the folder of `python -m medivision.train +experiment=degradation_ablation` (or a list of run
folders or .ckpt files). Every run is one row, labelled with the `data.degradation` it was trained on (read
from its .hydra/config.yaml); every entry of `degradations` is one column: the run's checkpoint evaluated
on the test split of `data` with LR made by that degradation (validation/test noise is seeded per image,
so every model sees the same LR images). Each cell holds the model's PSNR/SSIM and bicubic upsampling's
on the same LR images. Writes matrix.csv, matrix.md and matrix.png (heat maps of the gain over bicubic)
into outputs/degradation_matrix/<time>/.
"""

from __future__ import annotations

from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.degradation_matrix"):
    import hydra
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    from medivision.data.datamodule import SRDataModule
    from medivision.data.degradation_options import DEGRADATIONS
    from medivision.inference.models import load_model
    from medivision.report.matrix import METRICS, evaluate_on, heat_map, matrix_tables
    from medivision.report.runs import Run, find_runs
    from medivision.report.scoring import check_compatible
    from medivision.report.tables import write_csv


@command_line("degradation_matrix", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="degradation_matrix")
@one_line_errors("medivision.degradation_matrix")
def main(cfg: DictConfig) -> None:
    report, folder = degradation_matrix(cfg)
    print(report)
    print(f"table: {folder / 'matrix.md'}, {folder / 'matrix.csv'}\nheat map: {folder / 'matrix.png'}")


def degradation_matrix(cfg: DictConfig) -> tuple[str, Path]:
    """Evaluate every run on every degradation in cfg.degradations; write the files, return (report, folder)."""
    unknown = [kind for kind in cfg.degradations if kind not in DEGRADATIONS]
    if unknown or not cfg.degradations:
        raise ValueError(f"degradations={list(cfg.degradations)} must be a non-empty list of {', '.join(DEGRADATIONS)}")
    runs = find_runs(cfg.runs, cfg.checkpoint)
    # every kind's data (and its settings' checks) before any model is loaded or evaluated
    datamodules: dict[str, SRDataModule] = {kind: instantiate(cfg.data, degradation=kind) for kind in cfg.degradations}
    models = {run.label: load_model(run.checkpoint, cfg.device) for run in runs}
    rows = []
    for kind, datamodule in datamodules.items():
        for run in runs:
            check_compatible(models[run.label], datamodule, str(run.checkpoint))
        numbers = evaluate_on(models, datamodule)
        rows += [{"trained_on": run.label, "evaluated_on": kind, **numbers[run.label],
                  "checkpoint": str(run.checkpoint)} for run in runs]
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "matrix.csv", rows, ["trained_on", "evaluated_on", *METRICS, "images", "checkpoint"])
    report = markdown(rows, runs, list(cfg.degradations), cfg)
    (out / "matrix.md").write_text(report)
    cell = {(row["trained_on"], row["evaluated_on"]): row for row in rows}
    heat_map(out / "matrix.png", cell, [run.label for run in runs], list(cfg.degradations), "trained on",
             "evaluated on", "Cross-degradation matrix")
    return report, out


def markdown(rows: list[dict], runs: list[Run], kinds: list[str], cfg: DictConfig) -> str:
    """The matrix as Markdown tables (rows: trained on; columns: evaluated on): values, then the gain over bicubic."""
    cell = {(row["trained_on"], row["evaluated_on"]): row for row in rows}
    images = rows[0]["images"]
    lines = [f"# Cross-degradation matrix ({images} test images of {cfg.data.source}, seed {cfg.data.seed})", ""]
    lines += matrix_tables(cell, [run.label for run in runs], kinds, "trained on \\ evaluated on")
    seeds = sorted({run.seed for run in runs if run.seed is not None})
    if seeds and seeds != [cfg.data.seed]:
        lines += ["", f"Note: the runs were trained with seed(s) {seeds}, but this test split was made with seed "
                      f"{cfg.data.seed}; pass seed={seeds[0]} to test on the split those runs held out."]
    options = OmegaConf.to_container(cfg.data.degradation_options, resolve=True)
    lines += ["", f"Degradation options: {options}. Checkpoints: {', '.join(str(run.checkpoint) for run in runs)}.",
              "", "SR images are model estimates, not measurements."]
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
