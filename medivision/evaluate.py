"""`python -m medivision.evaluate [ckpt=PATH] [data=...] [compare=[...]] [ensemble=8] [consistency=true]`: the
test-split report. Without ckpt, the bundled general model is evaluated.

For every test image (the split `data` makes, LR from `data.degradation`): PSNR and SSIM of the model,
of bicubic upsampling and of any `compare` checkpoints (or ONNX files), on the whole image and on the
brain only, plus the LR-consistency PSNR of each output (degrade(SR) against the LR input). The brain
mask comes from HR: pixels above `foreground_level`, holes filled, dilated by `foreground_dilation`
(see medivision.report.metrics.foreground_mask). With consistency=true the model's outputs are also
corrected by back-projection and reported as "model + consistency", with the change it causes. With
ensemble=8 the 8-fold self-ensemble is reported as "model + ensemble" beside the single pass, with the time
each took, and its uncertainty map (the std of the 8 outputs) is scored against the real error
(medivision.report.metrics.uncertainty_agreement; uncertainty.csv).

On the real-scan benchmark (data=real_scans) every group is evaluated with LR by bicubic and by k-space
truncation, the report opens with the shipping gate (medivision.report.gate) and there is a figure per group;
require_gate=true makes a model that fails the gate an error naming the failing groups (what `make bundle` runs).

Writes into the run directory (outputs/evaluate/<time>/): per_image.csv (one row per image, LR kind and
method), report.md (the gate on data=real_scans; overall, per class, consistency change) and cases.png (the
model's best, median and worst test images by PSNR: LR / bicubic / SR / HR / error map; on data=real_scans
cases_<group>.png, each group's median slice with each LR kind). Logged to W&B with logger=wandb.
"""


from __future__ import annotations

from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.evaluate"):
    import hydra
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    from medivision.data.datamodule import SRDataModule
    from medivision.data.real_scans import REAL_SCAN_GROUPS, REAL_SCAN_LR
    from medivision.inference.ensemble import check_ensemble
    from medivision.inference.models import SRModel, load_model
    from medivision.report.cases import case_figure, group_figures
    from medivision.report.evaluation import (
        COLUMNS,
        UNCERTAINTY_COLUMNS,
        Evaluation,
        markdown,
        report_notes,
        report_title,
    )
    from medivision.report.evaluation_log import log_evaluation
    from medivision.report.gate import failures, gate_markdown, group_results
    from medivision.report.scoring import Measured, check_compatible, measure
    from medivision.report.tables import write_csv
    from medivision.training.loggers import finish_run


@command_line("evaluate", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@one_line_errors("medivision.evaluate")
def main(cfg: DictConfig) -> None:
    result = evaluate(cfg)
    print(result.report)
    figures = ", ".join(str(path) for path in result.figures)
    print(f"per-image numbers: {result.csv}\nreport:            {result.markdown}\ncase figures:      {figures}")


def evaluate(cfg: DictConfig) -> Evaluation:
    """Evaluate cfg.ckpt (and cfg.compare) on cfg.data's test split; write and log the report.

    On the real-scan benchmark (data=real_scans) every LR kind of REAL_SCAN_LR is evaluated in turn, the report
    opens with the shipping gate (medivision.report.gate), and there is a figure per group; with
    require_gate=true a model that fails the gate raises ValueError naming the groups that failed.
    """
    ensemble = check_ensemble(cfg.ensemble)
    benchmark = cfg.data.source == "real_scans"
    if cfg.require_gate and not benchmark:
        raise ValueError("require_gate=true needs the real-scan benchmark: pass data=real_scans")
    kinds = REAL_SCAN_LR if benchmark else (cfg.data.degradation,)
    datamodules = {kind: instantiate(cfg.data, degradation=kind) for kind in kinds}
    models = _load_models(cfg, datamodules[kinds[0]])
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    measured = Measured.of(models, ensemble, cfg.consistency)
    for datamodule in datamodules.values():
        measure(datamodule, models, measured, cfg.consistency_iterations,
                (cfg.foreground_level, cfg.foreground_dilation))
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.ckpt or models["model"].name
    groups = group_results(measured.rows) if benchmark else []
    expected = [(group, kind) for group in REAL_SCAN_GROUPS for kind in kinds]
    figures = ([out / f"cases_{group}.png" for group in dict.fromkeys(result.group for result in groups)]
               if benchmark else [out / "cases.png"])
    result = Evaluation(measured.rows, measured.methods, _report(measured, name, datamodules, cfg, groups, expected),
                        out / "per_image.csv", out / "report.md", figures, measured.agreement, measured.seconds,
                        failures(groups, expected) if benchmark else None)
    write_csv(result.csv, result.rows, COLUMNS)
    if result.uncertainty:
        write_csv(out / "uncertainty.csv", result.uncertainty, UNCERTAINTY_COLUMNS)
    result.markdown.write_text(result.report)
    if benchmark:
        group_figures(result.figures, result.rows, models["model"], datamodules, cfg.error_gain)
    else:
        case_figure(result.figures[0], result.rows, models["model"], datamodules[kinds[0]], cfg.error_gain)
    _log(loggers, result, cfg)
    if cfg.require_gate and result.gate_failures:
        raise ValueError(f"{name} fails the shipping gate on data=real_scans ({'; '.join(result.gate_failures)}): "
                         f"it must not be shipped (report: {result.markdown})")
    return result


def _load_models(cfg: DictConfig, data: SRDataModule) -> dict[str, SRModel]:
    """The model (cfg.ckpt) and each compare entry, named by its run folder and file; each must fit the data."""
    models = {"model": load_model(cfg.ckpt, cfg.device)}  # no ckpt: the bundled general model
    for path in cfg.compare or []:
        path = Path(path)
        name = f"{path.parent.parent.name}/{path.name}" if path.parent.name == "checkpoints" else path.name
        models[name if name not in models else str(path)] = load_model(path, cfg.device)
    for name, model in models.items():
        check_compatible(model, data, f"{name} ({model.name})")
    return models


def _report(measured: Measured, name: str, datamodules: dict[str, SRDataModule], cfg: DictConfig, groups: list,
            expected: list[tuple[str, str]]) -> str:
    """The report: a section per LR kind, opened on data=real_scans by the shipping gate over the groups."""
    one_kind = len(datamodules) == 1
    sections = [markdown([row for row in measured.rows if row["lr"] == kind], measured.methods,
                         report_title(name, data.source.source, data.source.root, data.lowres.degradation),
                         report_notes(cfg.foreground_level, cfg.foreground_dilation),
                         [row for row in measured.agreement if row["lr"] == kind],
                         measured.seconds if one_kind else None)
                for kind, data in datamodules.items()]
    if groups:
        gate = gate_markdown(groups, expected)
        sections.insert(0, "\n".join([f"# {name} on the real-scan benchmark", "", *gate, ""]))
    return "\n".join(sections)


def _log(loggers: list, result: Evaluation, cfg: DictConfig) -> None:
    """The evaluation to every logger (medivision.report.evaluation_log); W&B's run is finished even on an error."""
    try:
        log_evaluation(loggers, result, OmegaConf.to_container(cfg, resolve=True))
    finally:
        if loggers:
            finish_run()


if __name__ == "__main__":
    main()
