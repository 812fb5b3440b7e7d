"""`python -m medivision.train [+experiment=NAME] [key=value ...]`: compose, build, fit, test, report.

Returns the value of `optimized_metric` for the best checkpoint, so Hydra sweepers can maximise it.
"""

from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.train"):
    import hydra
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import DictConfig, OmegaConf

    from medivision.inference.checkpoints import load_checkpoint
    from medivision.report.tables import metrics_table
    from medivision.training.launching import (
        check_trainer_arguments,
        command_line_overrides,
        refuse_ddp_in_local_multirun,
    )
    from medivision.training.loggers import finish_run, make_loggers, start_loggers
    from medivision.training.notices import silence_third_party_notices
    from medivision.training.provenance import Provenance

# ckpt_path values Lightning resolves itself (to the run's own checkpoints); anything else names a file
LIGHTNING_CKPT_PATHS = ("last", "best", "hpc", "registry")


@command_line("train", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@one_line_errors("medivision.train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


def train(cfg: DictConfig) -> float | None:
    """Fit `cfg.model` on `cfg.data`, validate (and test) the best checkpoint, print where things are."""
    silence_third_party_notices(resuming=cfg.ckpt_path is not None)
    # Everything a user can get wrong is checked before the first network (and VGG19's weights) is built.
    datamodule = instantiate(cfg.data)  # finds the data: a wrong data.root or layout stops the run here
    if cfg.ckpt_path is not None and str(cfg.ckpt_path).split(":")[0] not in LIGHTNING_CKPT_PATHS:
        load_checkpoint(cfg.ckpt_path)  # a missing, broken or code-carrying file stops here; fit reads it again
    check_trainer_arguments(OmegaConf.to_container(cfg.trainer, resolve=True))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = instantiate(cfg.model)
    loggers = make_loggers(cfg.get("logger"), cfg.paths.output_dir)
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    data = OmegaConf.to_container(cfg.data, resolve=True)
    callbacks.append(Provenance(command_line_overrides(), {k: v for k, v in data.items() if k != "_target_"}))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    refuse_ddp_in_local_multirun(trainer)
    hyperparameters = {**OmegaConf.to_container(cfg, resolve=True), "overrides": command_line_overrides()}
    trainer.loggers = loggers = start_loggers(loggers, hyperparameters, cfg.paths.output_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        checkpoint = best or None
        results = {"val": trainer.validate(module, datamodule=datamodule, ckpt_path=checkpoint)[0]}
        if cfg.test:
            results["test"] = trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint)[0]
        summary = _summary(trainer, results, best, loggers) if trainer.is_global_zero else ""
    finally:
        finish_run()
    if summary:
        print(summary)  # after W&B's own closing lines, so the run ends with where everything is
    return results["val"].get(cfg.optimized_metric)


def _summary(trainer: L.Trainer, results: dict, best: str, loggers: list) -> str:
    monitor = trainer.checkpoint_callback.monitor if best else None
    lines = [f"\nPSNR/SSIM of the best checkpoint by {monitor}:" if monitor else "\nPSNR/SSIM:",
             metrics_table(results)]
    run_dir = Path(trainer.default_root_dir)
    lines += [f"\nrun directory:  {run_dir}",
              f"checkpoints:    {best or 'none'} (and last.ckpt beside it)",
              f"sample panels:  {run_dir / 'samples'}"]
    offline_runs = []
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            where = Path(logger.experiment.dir).parent
            lines.append(f"W&B run:        {where}")
            offline_runs += [where] if logger.experiment.settings.mode == "offline" else []
        else:
            lines.append(f"{type(logger).__name__}:      {logger.log_dir}")
    return "\n".join(lines + next_steps(run_dir, best, offline_runs))


def next_steps(run_dir: Path, best: str, offline_runs: list[Path]) -> list[str]:
    """What a user can do with a finished run, as commands to copy."""
    steps = ["\nnext:", f"  python -m medivision.compare {run_dir}    # table and learning curves in seconds"]
    for where in offline_runs:
        steps.append(f"  wandb leet {where}    # browse the W&B run in the terminal, offline")
    if best:
        steps.append(f"  python -m medivision.enhance ckpt={best} input=<scan or folder> output=<folder>")
    for where in offline_runs:
        steps.append(f"  wandb sync {where}    # upload to W&B, with an account (wandb login)")
    return steps


if __name__ == "__main__":
    main()
