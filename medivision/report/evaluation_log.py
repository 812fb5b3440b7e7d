"""An evaluation sent to the run's loggers: the overall numbers per method to each, and to W&B also the
per-image table and the case figures."""

from __future__ import annotations

import wandb
from lightning.pytorch.loggers import Logger, WandbLogger

from medivision.report.evaluation import Evaluation, means


def log_evaluation(loggers: list[Logger], result: Evaluation, hyperparams: dict) -> None:
    """`hyperparams` (the resolved config) and eval/<method>/<metric> (the means over the images; with the
    shipping gate, eval/gate_passed as 1.0 or 0.0) to every logger; the per-image rows and the figures to W&B.
    Finishing the W&B run is the caller's."""
    overall = means(result.rows, result.methods)
    metrics = {f"eval/{method}/{metric}": value for method, values in overall.items() for metric, value in
               values.items()}
    if result.gate_failures is not None:
        metrics["eval/gate_passed"] = float(not result.gate_failures)
    for logger in loggers:
        logger.log_hyperparams(hyperparams)
        logger.log_metrics(metrics)
        if isinstance(logger, WandbLogger):
            columns = list(result.rows[0])
            logger.experiment.log({
                "eval/per_image": wandb.Table(columns=columns, data=[list(r.values()) for r in result.rows]),
                **{f"eval/{path.stem}": wandb.Image(str(path), caption="test images by model PSNR; SR is a model "
                                                    "estimate, not a measurement") for path in result.figures},
            })
        logger.save()
