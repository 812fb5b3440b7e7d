"""Reading training runs back: their W&B logs to compare them (load_runs), their folders and checkpoints to
evaluate them (find_runs).

load_runs reads local W&B run logs (offline or synced) or the W&B server; every run comes back as the same dict:
{"id", "name", "group", "config" (nested, as train.py logged it), "job_type", "history" (rows of
{metric: value}), "summary", "runtime" (seconds or None)}.
"""

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from medivision.report.wandb_files import WandbTooOld, find_run_logs, read_run, run_group, wandb_has_credentials


def load_runs(target: str, runs_root: str | Path = "outputs", project: str = "medivision",
              entity: str | None = None) -> list[dict]:
    """The runs under the folder `target`, or else the runs of the W&B group `target`.

    A group is looked up among the local run logs under `runs_root` first (reading each log only up to its
    run record, which names the group), then on the W&B server when credentials exist (`wandb login` or
    WANDB_API_KEY). Logs that cannot be read (empty, not a run log) are skipped with one warning.
    """
    path = Path(target).expanduser()
    if path.is_dir():
        runs = _read_runs(find_run_logs(path), path)
        if not runs:
            raise FileNotFoundError(f"{path} holds no W&B run logs (run-*.wandb); pass a run or sweep directory "
                                    "written with logger=wandb, or a W&B group name")
        return runs
    logs = find_run_logs(runs_root) if Path(runs_root).is_dir() else []
    groups = _each(run_group, logs, runs_root)
    runs = _read_runs([log for log in logs if groups.get(log) == target], runs_root)
    if runs:
        return runs
    if wandb_has_credentials():
        runs = _server_runs(target, project, entity)
        if runs:
            return runs
    raise FileNotFoundError(
        f"no runs found for {target!r}: it is not a folder, no local W&B run under {runs_root}/ has that group"
        + (f", and the W&B project {project!r} has no run in it" if wandb_has_credentials()
           else "; log in to W&B (wandb login) to read groups from the server")
    )


def _read_runs(logs: list[Path], where: str | Path) -> list[dict]:
    """read_run of each readable log, in order."""
    return list(_each(read_run, logs, where).values())


def _each(read: Callable[[Path], object], logs: list[Path], where: str | Path) -> dict:
    """{log: read(log)} for the logs that can be read, in order, with one warning that counts the others
    (a wandb too old to read any is raised). Each read runs `wandb leet inspect` (about a second), so several
    at once."""
    def attempt(log: Path) -> tuple[Path, object, ValueError | None]:
        try:
            return log, read(log), None
        except WandbTooOld:
            raise
        except ValueError as error:
            return log, None, error

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(attempt, logs))
    failed = [error for _, _, error in results if error is not None]
    if failed:
        warnings.warn(f"skipped {len(failed)} of {len(logs)} W&B run logs under {where} that could not be read, "
                      f"e.g. {failed[0]}", stacklevel=3)
    return {log: value for log, value, error in results if error is None}


def _server_runs(group: str, project: str, entity: str | None) -> list[dict]:
    import wandb

    api = wandb.Api()
    runs = api.runs(f"{entity or api.default_entity}/{project}", filters={"group": group})
    return [
        {"id": run.id, "name": run.name, "group": run.group, "job_type": run.job_type, "config": dict(run.config),
         "history": list(run.scan_history()), "summary": dict(run.summary), "runtime": run.summary.get("_runtime")}
        for run in runs
    ]


@dataclass
class Run:
    """A training run found by find_runs: its checkpoint, the degradation its training data was made with (its
    label, made unique among the runs found), and its seed (None where its config is not beside it)."""

    label: str
    checkpoint: Path
    degradation: str
    seed: int | None


def find_runs(targets: str | Sequence[str], checkpoint: str = "best") -> list[Run]:
    """Runs from a sweep folder, run folders or .ckpt files; a run folder gives its best-*.ckpt or last.ckpt
    (`checkpoint`). FileNotFoundError naming `runs=` and what to pass when a target holds no run."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint={checkpoint!r} must be best or last")
    targets = [targets] if isinstance(targets, str) else list(targets)
    runs = []
    for target in map(Path, targets):
        if target.is_file():
            runs.append(_run(target.parent.parent, target))
        elif (target / ".hydra" / "config.yaml").is_file():
            runs.append(_run(target, _checkpoint_of(target, checkpoint)))
        elif target.is_dir():
            folders = sorted(path.parent.parent for path in target.glob("*/.hydra/config.yaml"))
            if not folders:
                raise FileNotFoundError(f"runs={target} holds no training runs (folders with .hydra/config.yaml): "
                                        "pass the folder of a +experiment=degradation_ablation multirun")
            runs += [_run(folder, _checkpoint_of(folder, checkpoint)) for folder in folders]
        else:
            raise FileNotFoundError(f"runs={target} does not exist: pass the folder of a "
                                    "+experiment=degradation_ablation multirun, run folders or .ckpt files")
    labels = [run.label for run in runs]
    for run in runs:
        if labels.count(run.label) > 1:  # e.g. several seeds of one degradation: keep the rows apart
            run.label = f"{run.label} ({run.checkpoint.parent.parent.name})"
    return runs


def _run(folder: Path, checkpoint: Path) -> Run:
    """The run of `folder`, read from the Hydra config train.py wrote there."""
    config = folder / ".hydra" / "config.yaml"
    if not config.is_file():
        return Run(f"? ({checkpoint.name})", checkpoint, "?", None)
    data = OmegaConf.load(config).data
    return Run(data.degradation, checkpoint, data.degradation, data.get("seed"))


def _checkpoint_of(folder: Path, which: str) -> Path:
    """The newest best-*.ckpt (which="best") or last.ckpt of the run folder."""
    found = sorted((folder / "checkpoints").glob("best-*.ckpt" if which == "best" else "last.ckpt"))
    if not found:
        raise FileNotFoundError(f"{folder}/checkpoints has no {'best-*.ckpt' if which == 'best' else 'last.ckpt'}: "
                                "did that run finish an epoch? (checkpoint=last takes last.ckpt)")
    return max(found, key=lambda path: path.stat().st_mtime_ns)
