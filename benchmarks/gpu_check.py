"""The Python parts of benchmarks/gpu_check.sh, run from the repository root (python -m benchmarks.gpu_check ...):

    machine OUT.json          the machine, and which of the project's imports are missing
    psnr RUN_DIR OUT.json     val/psnr (dB) of RUN_DIR/checkpoints/last.ckpt in 32-true and bf16-mixed, composed from
                              the run's overrides; fails when they differ by more than 0.05 dB
    nan OUT.json KEY=VALUE... a NaN training batch under 32-true, bf16-mixed and 16-mixed (KEY=VALUE: train overrides
                              for data, nets, trainer and paths); fails unless it is skipped and counted
    report WORK STEM          STEM.json and STEM.txt from WORK/steps.tsv and what the steps wrote into WORK

and a callback for training runs, `+callbacks.throughput._target_=benchmarks.gpu_check.Throughput
+callbacks.throughput.output=PATH`, that writes their training images/s. Each subcommand exits 1 when its check fails.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import lightning as L
import torch

PSNR_TOLERANCE_DB = 0.05
NAN_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
NAN_BATCH = 1  # the training batch made NaN (counted from 0); 4 batches are trained
# top-level imports of the project and its tests beyond torch, lightning and torchmetrics (nilearn: its data files)
MODULES = ("hydra", "omegaconf", "antlr4", "yaml", "wandb", "nibabel", "pydicom", "scipy", "torchvision", "PIL",
           "numpy", "safetensors", "tqdm", "matplotlib", "onnx", "onnxruntime", "nilearn", "pytest")


class Throughput(L.Callback):
    """Training images/s of a fit, without its first `warmup` batches (compiling, autotuning) and without
    validation: the device is synchronised where the window starts and ends and around each validation.

    Writes {"images", "seconds", "images_per_s", "batches", "warmup", "device", "first_global_step"} to `output`
    when fit ends; batches: the training batches this fit ran, first_global_step: where it started (resumed: > 0).
    """

    def __init__(self, output: str, warmup: int = 10) -> None:
        self.output, self.warmup = Path(output), warmup
        self.batches = self.images = 0
        self.start: float | None = None
        self.paused = 0.0
        self.pause_start = 0.0
        self.first_global_step = 0

    @staticmethod
    def _now(module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_start(self, trainer, module) -> None:
        self.first_global_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        if self.batches == self.warmup:
            self.start = self._now(module)
        elif self.start is not None:
            self.images += len(batch["hr"])

    def on_validation_start(self, trainer, module) -> None:
        self.pause_start = self._now(module)

    def on_validation_end(self, trainer, module) -> None:
        if self.start is not None:
            self.paused += self._now(module) - self.pause_start

    def on_fit_end(self, trainer, module) -> None:
        seconds = self._now(module) - self.start - self.paused if self.start is not None else 0.0
        self.output.write_text(json.dumps({
            "images": self.images, "seconds": seconds, "images_per_s": self.images / seconds if seconds else None,
            "batches": self.batches, "warmup": self.warmup, "device": str(module.device),
            "first_global_step": self.first_global_step,
        }))


class _NaNBatchWatch(L.Callback):
    """G and D weights around each training batch: which batches changed them."""

    def __init__(self) -> None:
        self.changed: list[bool] = []
        self.before: list[torch.Tensor] = []

    @staticmethod
    def _weights(module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in [*module.generator.parameters(), *module.discriminator.parameters()]]

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.before = self._weights(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.changed.append(not all(torch.equal(a, b) for a, b in zip(self.before, self._weights(module))))


def machine(out: Path) -> bool:
    cuda = torch.cuda.is_available()
    found = {name: importlib.util.find_spec(name) is not None for name in MODULES}
    _write(out, {
        "gpu": torch.cuda.get_device_name(0) if cuda else None, "gpus": torch.cuda.device_count(),
        "cuda": torch.version.cuda, "torch": torch.__version__, "lightning": L.__version__,
        "python": platform.python_version(), "cpu_cores": len(os.sched_getaffinity(0)),
        "missing_modules": [name for name, ok in found.items() if not ok],
    })
    return True


def psnr(run_dir: Path, out: Path) -> bool:
    """The run's own overrides (its .hydra/overrides.yaml, without resuming or compiling) validate last.ckpt."""
    import yaml
    from hydra.utils import instantiate

    from tests.training import compose_train

    overrides = [item for item in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
                 if not item.startswith(("hydra.", "ckpt_path=", "+callbacks.throughput"))]
    cfg = compose_train([*overrides, f"paths.output_dir={run_dir / 'psnr'}", "model.compile=false"])
    result = {}
    for precision in ("32-true", "bf16-mixed"):
        trainer = instantiate(cfg.trainer, precision=precision, logger=False, callbacks=[], enable_checkpointing=False,
                              enable_progress_bar=False)
        metrics = trainer.validate(instantiate(cfg.model), datamodule=instantiate(cfg.data),
                                   ckpt_path=str(run_dir / "checkpoints" / "last.ckpt"), verbose=False)[0]
        result[precision] = metrics["val/psnr"]
    result["difference_db"] = result["bf16-mixed"] - result["32-true"]
    result["ok"] = abs(result["difference_db"]) <= PSNR_TOLERANCE_DB
    _write(out, result)
    return result["ok"]


def nan(out: Path, overrides: list[str]) -> bool:
    """tests.faults.NaNBatches makes training batch NAN_BATCH's LR NaN: it must change no weight and be counted
    as skipped, the batches around it must train, and the weights stay finite."""
    from hydra.utils import instantiate

    from tests.training import compose_train

    result = {}
    for precision in NAN_PRECISIONS:
        cfg = compose_train([*overrides, "data._target_=tests.faults.NaNBatches", f"+data.nan_batches=[{NAN_BATCH}]",
                             "model.pretrain_epochs=0", "model.compile=false", "logger=none", "trainer.max_epochs=1",
                             "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=0",
                             f"trainer.precision={precision}"])
        module, watch = instantiate(cfg.model), _NaNBatchWatch()
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[watch], enable_checkpointing=False,
                              enable_progress_bar=False)
        trainer.fit(module, datamodule=instantiate(cfg.data))
        finite = all(torch.isfinite(p).all() for p in module.parameters())
        row = {"precision_used": str(trainer.precision), "device": str(module.device), "batch_changed_weights":
               watch.changed, "skipped_steps": module.skipped_steps, "bad_steps": module.bad_steps,
               "weights_finite": bool(finite)}
        expected = [index != NAN_BATCH for index in range(4)]
        row["ok"] = watch.changed == expected and row["skipped_steps"] == 1 and row["bad_steps"] == 0 and finite
        result[precision] = row
    _write(out, result)
    return all(row["ok"] for row in result.values())


def report(work: Path, stem: Path) -> bool:
    steps = []
    for line in (work / "steps.tsv").read_text().splitlines():
        name, code, seconds, limit, log, command = line.split("\t", 5)
        steps.append({"name": name, "ok": code == "0", "exit_code": None if code == "skipped" else int(code),
                      "skipped": code == "skipped", "seconds": float(seconds), "timeout_s": int(limit), "log": log,
                      "command": command})
    found = {name: _read(work / f"{name}.json") for name in
             ("machine", "train", "resume", "psnr", "nan", "general_device", "general_cpu")}
    result = {
        "mode": os.environ.get("GPU_CHECK_MODE"),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "command": os.environ.get("GPU_CHECK_COMMAND"), "seconds": sum(step["seconds"] for step in steps),
        "steps": steps, **found,
        "benchmark_training": [_read(path) for path in sorted((work / "bench-training").glob("*/benchmark.json"))],
        "benchmark_inference": _read(work / "bench-inference" / "benchmark.json"),
    }
    _write(stem.with_suffix(".json"), result)
    stem.with_suffix(".txt").write_text(_text(result) + "\n")
    return all(step["ok"] for step in steps)


def _text(result: dict) -> str:
    from medivision.benchmarks.table import format_report
    from medivision.report.tables import text_table

    machine = result["machine"] or {}
    lines = [f"MediVision GPU check ({result['mode']}), {result['date']}: {machine.get('gpu') or 'no GPU'}, "
             f"torch {machine.get('torch')} (CUDA {machine.get('cuda')}), lightning {machine.get('lightning')}, "
             f"Python {machine.get('python')}, {machine.get('cpu_cores')} cores",
             f"command: {result['command']}", f"missing modules: {', '.join(machine.get('missing_modules', []))}",
             f"{sum(step['ok'] for step in result['steps'])} of {len(result['steps'])} steps passed in "
             f"{result['seconds']:.0f} s", ""]
    lines += text_table(["step", "result", "exit code", "seconds", "limit (s)"], [
        [step["name"], "skipped" if step["skipped"] else "pass" if step["ok"] else "FAIL",
         "" if step["exit_code"] is None else step["exit_code"], f"{step['seconds']:.0f}", step["timeout_s"]]
        for step in result["steps"]])
    speeds = [(name, result[name]) for name in ("train", "resume", "general_device", "general_cpu") if result[name]]
    if speeds:
        lines += ["", "training images/s (after the warm-up batches, validation excluded):"]
        lines += text_table(["run", "device", "images/s", "images", "seconds"], [
            [name, speed["device"], f"{speed['images_per_s'] or 0:.1f}", speed["images"], f"{speed['seconds']:.1f}"]
            for name, speed in speeds], indent="  ")
    if result["psnr"]:
        psnr = result["psnr"]
        lines += ["", f"val/psnr of last.ckpt: 32-true {psnr['32-true']:.4f} dB, bf16-mixed {psnr['bf16-mixed']:.4f} "
                      f"dB, difference {psnr['difference_db']:+.4f} dB (at most {PSNR_TOLERANCE_DB})"]
    if result["nan"]:
        lines += ["", f"NaN batch {NAN_BATCH} of 4:"]
        lines += text_table(["precision", "ran as", "device", "batches that changed G/D", "skipped", "ok"], [
            [name, row["precision_used"], row["device"], row["batch_changed_weights"], row["skipped_steps"], row["ok"]]
            for name, row in result["nan"].items()], indent="  ")
    if result["benchmark_training"]:
        lines += ["", "benchmark, training (GAN stage; medians over rounds):"]
        lines += text_table(["batch", "precision", "Lightning images/s", "plain images/s", "ratio", "TFLOP/s"], [
            [t["batch_size"], t["precision"], f"{t['lightning_images_per_s']:.1f}", f"{t['plain_images_per_s']:.1f}",
             f"{t['ratio']:.3f}", f"{t['lightning_tflop_per_s']:.2f}"]
            for t in (run["training"] for run in result["benchmark_training"])], indent="  ")
    if result["benchmark_inference"]:
        lines += ["", format_report(result["benchmark_inference"])]
    failed = [step for step in result["steps"] if not step["ok"] and not step["skipped"]]
    for step in failed:
        tail = Path(step["log"]).read_text(errors="replace").splitlines()[-15:] if Path(step["log"]).is_file() else []
        lines += ["", f"{step['name']} failed (exit code {step['exit_code']}), the end of {step['log']}:", *tail]
    return "\n".join(lines)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "nan":
        passed = nan(Path(arguments[0]), arguments[1:])
    else:
        passed = {"machine": machine, "psnr": psnr, "report": report}[command](*map(Path, arguments))
    sys.exit(0 if passed else 1)
