"""`python -m medivision.benchmark [key=value ...]`: how fast MediVision trains, infers and loads data here.

Composes the training config groups plus `benchmark.*` (medivision/conf/benchmark.yaml), prints a table headed by
the machine, and writes the same numbers as JSON to `benchmark.output`.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from medivision.io.command_line import command_line
from medivision.io.errors import one_line_errors, train_extra

with train_extra("medivision.benchmark"):
    import hydra
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from omegaconf import DictConfig, open_dict

    from medivision.benchmarks.data import measure_data
    from medivision.benchmarks.inference import VARIANTS, measure_inference
    from medivision.benchmarks.machine import describe
    from medivision.benchmarks.synthetic import write_kaggle_layout
    from medivision.benchmarks.table import format_report
    from medivision.benchmarks.training import TrainingSettings, TrainingSetup, measure_training
    from medivision.data.datamodule import SRDataModule
    from medivision.data.decode import available_cpus
    from medivision.inference.checkpoints import TrainedGenerator, load_generator
    from medivision.nets import SRResNet
    from medivision.training.launching import command_line_overrides
    from medivision.training.notices import silence_third_party_notices

SECTIONS = ("training", "inference", "data")


@command_line("benchmark", __doc__)
@hydra.main(version_base="1.3", config_path="conf", config_name="benchmark")
@one_line_errors("medivision.benchmark")
def main(cfg: DictConfig) -> None:
    report = benchmark(cfg)
    print(format_report(report))
    print(f"\nwritten to {cfg.benchmark.output}")


def benchmark(cfg: DictConfig) -> dict:
    """Run the sections in cfg.benchmark.sections, write the JSON report and return it."""
    silence_third_party_notices()
    settings = cfg.benchmark
    _check(settings)
    trained = load_generator(cfg.ckpt) if cfg.ckpt else None  # a bad file stops the run before any measuring
    torch.set_num_threads(settings.threads or available_cpus())
    L.seed_everything(cfg.seed, verbose=False)
    if cfg.data.get("root") is None and cfg.data.source in ("kaggle", "folder"):
        synthetic = settings.synthetic
        root = write_kaggle_layout(Path(synthetic.dir), synthetic.train_images, synthetic.test_images,
                                   synthetic.size, cfg.seed)
        with open_dict(cfg):
            cfg.data.root = str(root)
    device = instantiate(cfg.trainer, logger=False).strategy.root_device
    report = {
        "command": " ".join(["python -m medivision.benchmark", *command_line_overrides()]),
        "machine": describe(device, str(cfg.trainer.precision)),
        "data_root": cfg.data.get("root"),
        "synthetic_data": cfg.data.get("root") == str(Path(settings.synthetic.dir)),
    }
    if "data" in settings.sections:
        report["data"] = measure_data(Path(cfg.data.root), functools.partial(_datamodule, cfg), device,
                                      settings.data.loader_batches)
    datamodule = _datamodule(cfg)
    if "training" in settings.sections:
        setup = TrainingSetup(functools.partial(instantiate, cfg.model), functools.partial(_trainer, cfg), datamodule,
                              _datamodule(cfg), str(cfg.trainer.precision))
        training = TrainingSettings(settings.training.warmup, settings.training.steps, settings.training.rounds)
        report["training"] = measure_training(setup, training, device)
    if "inference" in settings.sections:
        report["inference"] = _inference(cfg, trained, datamodule, device)
    report["load_average_at_end"] = os.getloadavg()[0]
    output = Path(settings.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _datamodule(cfg: DictConfig, **overrides) -> SRDataModule:
    """cfg.data (with `overrides`), prepared and set up."""
    datamodule: SRDataModule = instantiate(cfg.data, **overrides)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """cfg.trainer (with `overrides`) and new loggers of cfg.logger: each fit of the benchmark gets its own."""
    loggers = [instantiate(logger) for logger in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, logger=loggers or False, **overrides)


def _inference(cfg: DictConfig, trained: TrainedGenerator | None, datamodule: SRDataModule,
               device: torch.device) -> dict:
    """The EMA generator of cfg.ckpt (`trained`), or model.generator with seeded random weights, on
    validation/test images."""
    if trained is not None:
        generator, config = trained.network, trained.config
    else:
        config = dict(cfg.model.generator)
        generator = SRResNet(**config)
    settings = cfg.benchmark.inference
    count = settings.images
    rows = torch.cat([datamodule.val_set.rows, datamodule.test_set.rows])[:count]
    hr, lr = datamodule.evaluation_pair(rows, torch.cat([datamodule.val_set.hr, datamodule.test_set.hr])[:count])
    result = measure_inference(generator, config, lr, hr, list(settings.batch_sizes), list(settings.variants),
                               settings.repeats, device, torch.get_num_threads())
    result["weights"] = str(cfg.ckpt) if cfg.ckpt else "random"
    return result


def _check(settings: DictConfig) -> None:
    """Fail before measuring anything, naming the benchmark key that is wrong."""
    problems = []
    unknown = [name for name in settings.sections if name not in SECTIONS]
    if unknown:
        problems.append(f"benchmark.sections={list(settings.sections)}: {unknown} not among {', '.join(SECTIONS)}")
    unknown = [name for name in settings.inference.variants if name not in VARIANTS]
    if unknown:
        problems.append(f"benchmark.inference.variants={list(settings.inference.variants)}: {unknown} not among "
                        f"{', '.join(VARIANTS)}")
    counts = {
        "benchmark.training.warmup": settings.training.warmup, "benchmark.training.steps": settings.training.steps,
        "benchmark.training.rounds": settings.training.rounds, "benchmark.inference.images": settings.inference.images,
        "benchmark.inference.repeats": settings.inference.repeats,
        "benchmark.data.loader_batches": settings.data.loader_batches,
    }
    counts.update({f"benchmark.inference.batch_sizes[{i}]": size
                   for i, size in enumerate(settings.inference.batch_sizes)})
    if settings.threads is not None:
        counts["benchmark.threads"] = settings.threads
    problems += [f"{key}={value} must be at least 1" for key, value in counts.items() if value < 1]
    if problems:
        raise ValueError("; ".join(problems))


if __name__ == "__main__":
    main()
