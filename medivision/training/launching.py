"""How a run was launched: Hydra's overrides, and launch combinations that cannot work."""

import typing
from collections.abc import Mapping
from typing import Any

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


def check_trainer_arguments(arguments: Mapping[str, Any]) -> None:
    """Refuse `trainer.*` keys that lightning.Trainer does not take, and values of a type it does not take
    (`trainer.max_epochs=abc`), naming the key, before anything is built: Lightning itself would stop at a
    bare assertion deep inside fit, or at an unexpected keyword argument."""
    hints = typing.get_type_hints(Trainer.__init__)
    problems = [f"trainer.{key} is not an argument of lightning.Trainer" for key in arguments
                if key not in hints and not key.startswith("_")]
    problems += [f"trainer.{key}={value!r} is not accepted: lightning.Trainer takes {key}: "
                 f"{str(hints[key]).replace('typing.', '')}"
                 for key, value in arguments.items() if key in hints and not _fits(value, hints[key])]
    if problems:
        raise ValueError("; ".join(problems))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a config value (str, number, bool, None, list or dict) fits a type hint. Lists and dicts are
    taken on trust: nested configs (plugins) are Hydra's to build, and Lightning checks their items."""
    if isinstance(value, (list, dict)):
        return True
    if typing.get_origin(hint) is typing.Union:
        return any(_fits(value, member) for member in typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(hint, type) and isinstance(value, hint)
