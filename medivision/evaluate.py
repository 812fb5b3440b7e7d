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

Writes into the run directory (outputs/evaluate/<time>/): per_image.csv (one row per image and
method), report.md (overall, per class, consistency change) and cases.png (the model's best, median
and worst test images by PSNR: LR / bicubic / SR / HR / error map). Logged to W&B with logger=wandb.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
import wandb
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from medivision.data.datamodule import SRDataModule
from medivision.data.degradations import upsample_bicubic
from medivision.inference.consistency import make_consistent
from medivision.inference.ensemble import check_ensemble, self_ensemble
from medivision.inference.models import SRModel, load_model
from medivision.io.errors import one_line_errors
from medivision.report.evaluation import COLUMNS, CONSISTENT, ENSEMBLED, UNCERTAINTY_COLUMNS, markdown, means
from medivision.report.metrics import (
    METRICS,
    UNCERTAINTY_METRICS,
    foreground_mask,
    image_metrics,
    uncertainty_agreement,
)
from medivision.report.panels import save_panel
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
    figure: Path
    uncertainty: list[dict] = field(default_factory=list)  # per image, with ensemble=8 (UNCERTAINTY_COLUMNS)
    seconds: dict[str, float] = field(default_factory=dict)  # time each method took over the split


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@one_line_errors("medivision.evaluate")
def main(cfg: DictConfig) -> None:
    result = evaluate(cfg)
    print(result.report)
    print(f"per-image numbers: {result.csv}\nreport:            {result.markdown}\ncases figure:      {result.figure}")


def evaluate(cfg: DictConfig) -> Evaluation:
    """Evaluate cfg.ckpt (and cfg.compare) on cfg.data's test split; write and log the report."""
    ensemble = check_ensemble(cfg.ensemble)
    datamodule: SRDataModule = instantiate(cfg.data)
    models = _load_models(cfg, datamodule.scale, datamodule.intensity)
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    batches = datamodule.evaluation_batches("test")
    test_set = datamodule.test_set
    consistent = ["model" + CONSISTENT] if cfg.consistency else []
    ensembled = ["model" + ENSEMBLED] if ensemble == 8 else []
    methods = ["model", *ensembled, *consistent, *list(models)[1:], "bicubic"]
    rows: list[dict] = []
    agreement: list[dict] = []
    seconds: dict[str, float] = {}
    seen = 0  # test images before this batch; the loader keeps the split's order
    for batch in batches:
        outputs, spread = _outputs(models, batch["lr"], datamodule, cfg, ensemble, seconds)
        mask = foreground_mask(batch["hr"], cfg.foreground_level, cfg.foreground_dilation)
        fractions = mask.float().flatten(1).mean(1)
        labels = batch["label"].tolist()
        if spread is not None:
            numbers = uncertainty_agreement(spread, outputs["model" + ENSEMBLED], batch["hr"], mask)
            agreement += [{"image": seen + offset, "class": datamodule.class_names[label],
                           **{name: float(numbers[name][offset]) for name in UNCERTAINTY_METRICS}}
                          for offset, label in enumerate(labels)]
        for method in methods:
            numbers = image_metrics(outputs[method], batch["hr"], batch["lr"], mask, datamodule.scale,
                                    datamodule.degradation, datamodule.degradation_options)
            for offset, label in enumerate(labels):
                index = seen + offset
                rows.append({
                    "image": index, "path": test_set.paths[index], "slice_index": int(test_set.slice_index[index]),
                    "class": datamodule.class_names[label], "method": method,
                    **{metric: float(numbers[metric][offset]) for metric in METRICS},
                    "fg_fraction": float(fractions[offset]),
                })
        seen += len(labels)
    if not rows:
        raise ValueError(f"the test split of data.source={datamodule.source} is empty: raise data.test_fraction")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(rows, methods, _title(cfg.ckpt or models["model"].name, datamodule), _notes(cfg), agreement,
                      seconds)
    result = Evaluation(rows, methods, report, out / "per_image.csv", out / "report.md", out / "cases.png",
                        agreement, seconds)
    write_csv(result.csv, rows, COLUMNS)
    if agreement:
        write_csv(out / "uncertainty.csv", agreement, UNCERTAINTY_COLUMNS)
    result.markdown.write_text(result.report)
    _figure(result, models["model"], test_set.hr, datamodule, cfg)
    _log(loggers, result, cfg)
    return result


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
    outputs = {name: _timed(seconds, name, model, lr) for name, model in models.items()}
    spread = None
    if ensemble == 8:
        start = time.perf_counter()
        outputs["model" + ENSEMBLED], spread = self_ensemble(models["model"], lr, ensemble)
        seconds["model" + ENSEMBLED] = seconds.get("model" + ENSEMBLED, 0.0) + time.perf_counter() - start
    if cfg.consistency:
        outputs["model" + CONSISTENT] = make_consistent(outputs["model"], lr, datamodule.scale, datamodule.degradation,
                                                        cfg.consistency_iterations, datamodule.degradation_options)
    outputs["bicubic"] = upsample_bicubic(lr, datamodule.scale)
    return outputs, spread


def _timed(seconds: dict[str, float], name: str, model: SRModel, lr: torch.Tensor) -> torch.Tensor:
    start = time.perf_counter()
    sr = model(lr)
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    return sr


@torch.inference_mode()
def _figure(result: Evaluation, model: SRModel, hr_uint8: torch.Tensor, datamodule: SRDataModule,
            cfg: DictConfig) -> None:
    """The model's best, median and worst test images by PSNR, recomputed from the cached HR."""
    mine = sorted((row for row in result.rows if row["method"] == "model"), key=lambda row: row["psnr"])
    picks = (("best", mine[-1]), ("median", mine[len(mine) // 2]), ("worst", mine[0]))
    cases = []
    for title, row in picks:
        hr, lr = datamodule.evaluation_pair(datamodule.test_set.rows[[row["image"]]], hr_uint8[[row["image"]]])
        caption = f"{title}: {row['class']} #{row['image']}\nPSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}"
        cases.append((caption, lr[0], upsample_bicubic(lr, datamodule.scale)[0], model(lr)[0], hr[0]))
    save_panel(result.figure, cases, cfg.error_gain)


def _title(model: str, datamodule: SRDataModule) -> str:
    return (f"Evaluation of {model} on the test split of {datamodule.source}"
            f"{f' ({datamodule.root})' if datamodule.root else ''}, degradation {datamodule.degradation}")


def _notes(cfg: DictConfig) -> list[str]:
    return [
        "PSNR and SSIM (data range 1, Gaussian 11x11 SSIM) are computed per image and averaged; the brain "
        f"columns use only the pixels of a mask derived from HR (HR > {cfg.foreground_level}, holes filled, "
        f"dilated by {cfg.foreground_dilation} px). LR-consistency PSNR compares degrade(output) with the LR "
        "input: how far an output strays from what was measured (higher is closer; it is not image quality).",
        "SR images are model estimates, not measurements.",
    ]


def _log(loggers: list, result: Evaluation, cfg: DictConfig) -> None:
    """Overall numbers per method to every logger; the per-image table and the figure to W&B."""
    overall = means(result.rows, result.methods)
    metrics = {f"eval/{method}/{metric}": value for method, values in overall.items() for metric, value in
               values.items()}
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
            logger.log_metrics(metrics)
            if isinstance(logger, WandbLogger):
                columns = list(result.rows[0])
                logger.experiment.log({
                    "eval/per_image": wandb.Table(columns=columns, data=[list(r.values()) for r in result.rows]),
                    "eval/cases": wandb.Image(str(result.figure), caption="best, median and worst test images "
                                              "by model PSNR; SR is a model estimate, not a measurement"),
                })
            logger.save()
    finally:
        if loggers:
            finish_run()


if __name__ == "__main__":
    main()
