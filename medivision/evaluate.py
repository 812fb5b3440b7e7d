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

import time
from dataclasses import dataclass, field
from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.evaluate"):
    import hydra
    import numpy as np
    import torch
    import wandb
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import DictConfig, OmegaConf

    from medivision.data.datamodule import SRDataModule
    from medivision.data.degradation_options import ForwardModel
    from medivision.data.degradations import upsample_bicubic
    from medivision.data.real_scans import REAL_SCAN_GROUPS, REAL_SCAN_LR
    from medivision.inference.consistency import make_consistent
    from medivision.inference.ensemble import check_ensemble, self_ensemble
    from medivision.inference.models import SRModel, load_model
    from medivision.report.evaluation import COLUMNS, CONSISTENT, ENSEMBLED, UNCERTAINTY_COLUMNS, markdown, means
    from medivision.report.gate import failures, gate_markdown, group_results
    from medivision.report.metrics import (
        METRICS,
        UNCERTAINTY_METRICS,
        background_mean,
        foreground_mask,
        image_metrics,
        uncertainty_agreement,
    )
    from medivision.report.panels import PanelRow, save_panel
    from medivision.report.tables import write_csv
    from medivision.training.loggers import finish_run


@dataclass
class Evaluation:
    """What evaluate() measured and wrote: per-image rows, methods in table order, the files."""

    rows: list[dict]
    methods: list[str]
    report: str
    csv: Path
    markdown: Path
    figures: list[Path]  # cases.png; on data=real_scans, cases_<group>.png per group
    uncertainty: list[dict] = field(default_factory=list)  # per image, with ensemble=8 (UNCERTAINTY_COLUMNS)
    seconds: dict[str, float] = field(default_factory=dict)  # time each method took over the split
    gate_failures: list[str] | None = None  # data=real_scans: the groups failing the shipping gate ([]: it passes)


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
    first: SRDataModule = datamodules[kinds[0]]
    models = _load_models(cfg, first.scale, first.intensity)
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    consistent = ["model" + CONSISTENT] if cfg.consistency else []
    ensembled = ["model" + ENSEMBLED] if ensemble == 8 else []
    methods = ["model", *ensembled, *consistent, *list(models)[1:], "bicubic"]
    rows: list[dict] = []
    agreement: list[dict] = []
    seconds: dict[str, float] = {}
    for datamodule in datamodules.values():
        _measure(datamodule, models, methods, cfg, ensemble, rows, agreement, seconds)
    if not rows:
        raise ValueError(f"the test split of data.source={first.source} is empty: raise data.test_fraction")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.ckpt or models["model"].name
    groups = group_results(rows) if benchmark else []
    expected = [(group, kind) for group in REAL_SCAN_GROUPS for kind in kinds]
    sections = [markdown([row for row in rows if row["lr"] == kind], methods, _title(name, datamodule), _notes(cfg),
                         [row for row in agreement if row["lr"] == kind], seconds if len(kinds) == 1 else None)
                for kind, datamodule in datamodules.items()]
    if benchmark:
        gate = gate_markdown(groups, expected)
        sections.insert(0, "\n".join([f"# {name} on the real-scan benchmark", "", *gate, ""]))
    figures = ([out / f"cases_{group}.png" for group in dict.fromkeys(result.group for result in groups)]
               if benchmark else [out / "cases.png"])
    result = Evaluation(rows, methods, "\n".join(sections), out / "per_image.csv", out / "report.md", figures,
                        agreement, seconds, failures(groups, expected) if benchmark else None)
    write_csv(result.csv, rows, COLUMNS)
    if agreement:
        write_csv(out / "uncertainty.csv", agreement, UNCERTAINTY_COLUMNS)
    result.markdown.write_text(result.report)
    if benchmark:
        _group_figures(result, models["model"], datamodules, cfg)
    else:
        _figure(result, models["model"], first, cfg)
    _log(loggers, result, cfg)
    if cfg.require_gate and result.gate_failures:
        raise ValueError(f"{name} fails the shipping gate on data=real_scans ({'; '.join(result.gate_failures)}): "
                         f"it must not be shipped (report: {result.markdown})")
    return result


def _measure(datamodule: SRDataModule, models: dict[str, SRModel], methods: list[str], cfg: DictConfig,
             ensemble: int, rows: list[dict], agreement: list[dict], seconds: dict[str, float]) -> None:
    """Every method on the datamodule's test split: appends a row per image and method (and, with ensemble=8, a
    row per image to `agreement`); adds each method's time to `seconds`."""
    batches = datamodule.evaluation_batches("test")  # sets the data up
    test_set = datamodule.test_set
    seen = 0  # test images before this batch; the loader keeps the split's order
    for batch in batches:
        outputs, spread = _outputs(models, batch["lr"], datamodule, cfg, ensemble, seconds)
        mask = foreground_mask(batch["hr"], cfg.foreground_level, cfg.foreground_dilation)
        fractions = mask.float().flatten(1).mean(1)
        true_background = background_mean(batch["hr"], mask)
        labels = batch["label"].tolist()
        kind = datamodule.degradation
        if spread is not None:
            numbers = uncertainty_agreement(spread, outputs["model" + ENSEMBLED], batch["hr"], mask)
            agreement += [{"image": seen + offset, "class": datamodule.class_names[label], "lr": kind,
                           **{name: float(numbers[name][offset]) for name in UNCERTAINTY_METRICS}}
                          for offset, label in enumerate(labels)]
        for method in methods:
            numbers = image_metrics(outputs[method], batch["hr"], batch["lr"], mask, datamodule.scale,
                                    datamodule.degradation, datamodule.degradation_options)
            for offset, label in enumerate(labels):
                index = seen + offset
                rows.append({
                    "image": index, "path": test_set.paths[index], "slice_index": int(test_set.slice_index[index]),
                    "class": datamodule.class_names[label], "lr": kind, "method": method,
                    **{metric: float(numbers[metric][offset]) for metric in METRICS},
                    "fg_fraction": float(fractions[offset]), "hr_bg_mean": float(true_background[offset]),
                })
        seen += len(labels)


def _load_models(cfg: DictConfig, scale: int, intensity: str) -> dict[str, SRModel]:
    """The model (cfg.ckpt) and each compare entry, named by its run folder and file; their scales and
    intensity policies must be the data's."""
    models = {"model": load_model(cfg.ckpt, cfg.device)}  # no ckpt: the bundled general model
    for path in cfg.compare or []:
        path = Path(path)
        name = f"{path.parent.parent.name}/{path.name}" if path.parent.name == "checkpoints" else path.name
        models[name if name not in models else str(path)] = load_model(path, cfg.device)
    for name, model in models.items():
        if model.scale != scale:
            raise ValueError(f"{name} ({model.name}) upsamples {model.scale}x but data.scale={scale}: "
                             f"pass data.scale={model.scale} or a {scale}x checkpoint")
        if model.intensity != intensity:
            raise ValueError(f"{name} ({model.name}) was trained on data mapped to [0, 1] by the {model.intensity} "
                             f"policy, but data.intensity={intensity}: pass data.intensity={model.intensity}")
    return models


@torch.inference_mode()
def _outputs(models: dict[str, SRModel], lr: torch.Tensor, datamodule: SRDataModule, cfg: DictConfig, ensemble: int,
             seconds: dict[str, float]) -> tuple[dict, torch.Tensor | None]:
    """Every method's SR of one batch, and the ensemble's uncertainty map (ensemble=8; else None); the time each
    method takes is added up in `seconds`."""
    unit = lr.numpy()
    outputs = {name: _timed(seconds, name, model, unit) for name, model in models.items()}
    spread = None
    if ensemble == 8:
        start = time.perf_counter()
        outputs["model" + ENSEMBLED], spread = self_ensemble(models["model"], unit, ensemble)
        seconds["model" + ENSEMBLED] = seconds.get("model" + ENSEMBLED, 0.0) + time.perf_counter() - start
        spread = torch.from_numpy(spread)
    if cfg.consistency:
        forward = ForwardModel.of(datamodule.degradation, datamodule.degradation_options)
        outputs["model" + CONSISTENT] = make_consistent(outputs["model"], unit, datamodule.scale, forward,
                                                        cfg.consistency_iterations)
    outputs = {name: torch.from_numpy(sr) for name, sr in outputs.items()}
    outputs["bicubic"] = upsample_bicubic(lr, datamodule.scale)
    return outputs, spread


def _timed(seconds: dict[str, float], name: str, model: SRModel, lr: np.ndarray) -> np.ndarray:
    start = time.perf_counter()
    sr = model(lr)
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    return sr


@torch.inference_mode()
def _figure(result: Evaluation, model: SRModel, datamodule: SRDataModule, cfg: DictConfig) -> None:
    """The model's best, median and worst test images by PSNR, recomputed from the cached HR."""
    mine = sorted((row for row in result.rows if row["method"] == "model"), key=lambda row: row["psnr"])
    picks = (("best", mine[-1]), ("median", mine[len(mine) // 2]), ("worst", mine[0]))
    save_panel(result.figures[0], [_case(f"{title}: {row['class']} #{row['image']}", row, model, datamodule)
                                   for title, row in picks], cfg.error_gain)


@torch.inference_mode()
def _group_figures(result: Evaluation, model: SRModel, datamodules: dict[str, SRDataModule], cfg: DictConfig) -> None:
    """Per group of the real-scan benchmark, its median image by model PSNR with each LR kind, one row each."""
    for path in result.figures:
        group = path.stem.removeprefix("cases_")
        cases = []
        for kind, datamodule in datamodules.items():
            mine = sorted((row for row in result.rows if row["method"] == "model" and row["class"] == group
                           and row["lr"] == kind), key=lambda row: row["psnr"])
            if mine:
                row = mine[len(mine) // 2]
                cases.append(_case(f"{group}, {kind} LR: median #{row['image']}", row, model, datamodule))
        save_panel(path, cases, cfg.error_gain)


def _case(title: str, row: dict, model: SRModel, datamodule: SRDataModule) -> PanelRow:
    """One panel row for the test image of `row`: LR, bicubic, SR, HR, captioned with its numbers."""
    index = row["image"]
    hr, lr = datamodule.evaluation_pair(datamodule.test_set.rows[[index]], datamodule.test_set.hr[[index]])
    caption = f"{title}\nPSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}"
    return caption, lr[0], upsample_bicubic(lr, datamodule.scale)[0], torch.from_numpy(model(lr.numpy()))[0], hr[0]


def _title(model: str, datamodule: SRDataModule) -> str:
    return (f"Evaluation of {model} on the test split of {datamodule.source}"
            f"{f' ({datamodule.root})' if datamodule.root else ''}, degradation {datamodule.degradation}")


def _notes(cfg: DictConfig) -> list[str]:
    return [
        "PSNR and SSIM (data range 1, Gaussian 11x11 SSIM) are computed per image and averaged; the brain "
        f"columns use only the pixels of a mask derived from HR (HR > {cfg.foreground_level}, holes filled, "
        f"dilated by {cfg.foreground_dilation} px). LR-consistency PSNR compares degrade(output) with the LR "
        "input: how far an output strays from what was measured (higher is closer; it is not image quality). "
        "Background mean: the output's mean intensity outside the mask, where a real scan has its noise floor.",
        "SR images are model estimates, not measurements.",
    ]


def _log(loggers: list, result: Evaluation, cfg: DictConfig) -> None:
    """Overall numbers per method to every logger; the per-image table and the figure to W&B."""
    overall = means(result.rows, result.methods)
    metrics = {f"eval/{method}/{metric}": value for method, values in overall.items() for metric, value in
               values.items()}
    if result.gate_failures is not None:
        metrics["eval/gate_passed"] = float(not result.gate_failures)
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            logger.log_metrics(metrics)
            if isinstance(logger, WandbLogger):
                columns = list(result.rows[0])
                logger.experiment.log({
                    "eval/per_image": wandb.Table(columns=columns, data=[list(r.values()) for r in result.rows]),
                    **{f"eval/{path.stem}": wandb.Image(str(path), caption="test images by model PSNR; SR is a model "
                                                        "estimate, not a measurement") for path in result.figures},
                })
            logger.save()
    finally:
        if loggers:
            finish_run()


if __name__ == "__main__":
    main()
