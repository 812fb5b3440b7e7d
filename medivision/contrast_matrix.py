"""`python -m medivision.contrast_matrix models=[A,B,...] [families=[...]]`: every model on every contrast family.

The test split of data=synth (slices of the MNI152 template held out of training) is drawn once in each contrast
family of `families` (medivision.data.contrast; `template` is the real T1 slice itself), with the contrast and the
LR noise seeded per image, so every model sees the same images. Each cell holds the model's PSNR/SSIM and
bicubic upsampling's on the same LR images. A family the model never drew in training tests it on a contrast
it has never seen. Writes matrix.csv, matrix.md and matrix.png into outputs/contrast_matrix/<time>/.
"""

from __future__ import annotations

from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.contrast_matrix"):
    import hydra
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    from medivision.data.contrast import FAMILY_NAMES
    from medivision.data.datamodule import SRDataModule
    from medivision.inference.ensemble import check_ensemble
    from medivision.inference.models import load_model
    from medivision.report.matrix import METRICS, evaluate_on, heat_map, matrix_tables
    from medivision.report.scoring import check_compatible
    from medivision.report.tables import write_csv

BUNDLED = "bundled"


@command_line("contrast_matrix", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="contrast_matrix")
@one_line_errors("medivision.contrast_matrix")
def main(cfg: DictConfig) -> None:
    report, folder = contrast_matrix(cfg)
    print(report)
    print(f"table: {folder / 'matrix.md'}, {folder / 'matrix.csv'}\nheat map: {folder / 'matrix.png'}")


def contrast_matrix(cfg: DictConfig) -> tuple[str, Path]:
    """Evaluate every model on every family of cfg.families; write the files, return (report, folder)."""
    families = list(cfg.families)
    if not families or not set(families) <= set(FAMILY_NAMES):
        raise ValueError(f"families={families} must be a non-empty list of {', '.join(FAMILY_NAMES)}")
    ensemble = check_ensemble(cfg.ensemble)
    paths = [None if str(model) == BUNDLED else Path(model) for model in cfg.models]
    labels = list(cfg.labels) if cfg.labels is not None else [_label(path) for path in paths]
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise ValueError(f"labels={labels} must name each of the {len(paths)} models once, in order")
    models = {label: load_model(path, cfg.device) for label, path in zip(labels, paths)}
    contrast = OmegaConf.to_container(cfg.data.contrast, resolve=True)
    rows = []
    for family in families:
        datamodule: SRDataModule = instantiate(cfg.data, contrast={**contrast, "families": [family]})
        for label, model in models.items():
            check_compatible(model, datamodule, f"{label} ({model.name})")
        numbers = evaluate_on(models, datamodule, ensemble)
        rows += [{"model": label, "family": family, **numbers[label], "file": models[label].name} for label in labels]
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "matrix.csv", rows, ["model", "family", *METRICS, "images", "file"])
    cell = {(row["model"], row["family"]): row for row in rows}
    passes = ", each as its 8-fold self-ensemble" if ensemble == 8 else ""
    lines = [f"# Cross-contrast matrix ({rows[0]['images']} held-out template slices, degradation "
             f"{cfg.data.degradation}, seed {cfg.data.seed}{passes})", ""]
    lines += matrix_tables(cell, labels, families, "model \\ contrast family")
    lines += ["", f"Models: {'; '.join(f'{label}: {models[label].name}' for label in labels)}.", "",
              f"Contrast options (one family per column): { {k: v for k, v in contrast.items() if k != 'families'} }.",
              "", "SR images are model estimates, not measurements."]
    report = "\n".join(lines) + "\n"
    (out / "matrix.md").write_text(report)
    heat_map(out / "matrix.png", cell, labels, families, "model", "contrast family", "Cross-contrast matrix")
    return report, out


def _label(path: Path | None) -> str:
    """A row label: the run folder of a checkpoint in <run>/checkpoints/, else the file name."""
    if path is None:
        return "bundled general model"
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.name


if __name__ == "__main__":
    main()
