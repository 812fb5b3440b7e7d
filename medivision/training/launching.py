"""How a run was launched: Hydra's overrides, and launch combinations that cannot work."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import Trainer
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher


def command_line_overrides() -> list[str]:
    """The job's `key=value` overrides as Hydra applied them (sweep values included); [] outside Hydra."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def refuse_ddp_in_local_multirun(trainer: Trainer) -> None:
    """Stop a local Hydra multirun (`-m`, or an experiment that sweeps) from starting script-launched DDP.

    Lightning's DDP starts the other processes by running the same command line again, so inside a
    multirun every process would start the whole sweep anew. SLURM starts the processes itself
    (hydra/launcher=slurm), which is fine.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise RuntimeError(
            f"trainer.strategy={type(trainer.strategy).__name__} with {trainer.world_size} processes cannot run "
            "inside a local Hydra multirun: it starts its processes by re-running this command line, which "
            "would re-run the whole sweep. Run the sweep's jobs one at a time without -m, use one device per "
            "job (trainer.devices=1), or use hydra/launcher=slurm on a cluster (one task per GPU)."
        )
