"""Helpers for tests that compose the real Hydra configs and train tiny models on the CPU."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "medivision" / "conf"


def compose_train(overrides: list[str]) -> DictConfig:
    """medivision/conf/train.yaml composed with `overrides`, as `python -m medivision.train` would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def tiny(data_root: Path, out: Path, *extra: str, multirun: bool = False) -> list[str]:
    """Overrides for a seconds-long CPU run: tiny nets, two batches, random VGG, everything under `out`.

    With `multirun`, each job writes to its own Hydra sweep subdirectory of `out` instead.
    """
    where = [f"hydra.sweep.dir={out}"] if multirun else [f"hydra.run.dir={out}", f"paths.output_dir={out}"]
    return [
        f"data.root={data_root}",
        f"data.cache_dir={out / 'cache'}",
        "data.batch_size=4",
        "data.num_workers=0",
        "model.generator.channels=8",
        "model.generator.blocks=1",
        "model.generator.reduction=4",
        "model.discriminator.base_channels=4",
        "model.loss.perceptual.weights=random",
        "model.loss.perceptual.layer=conv1_2",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0",
        "+trainer.enable_progress_bar=false",
        *where,
        *extra,
    ]
