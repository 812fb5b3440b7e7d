"""Training end to end on a generated Kaggle-layout folder, with the real configs and a real Trainer."""

import warnings

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from torch.optim.lr_scheduler import MultiStepLR

from medivision.inference.checkpoints import load_checkpoint
from medivision.train import train
from medivision.training.schedule import EpochMultiStepLR
from tests.training import CONF_DIR, compose_train, tiny

EXPERIMENTS = sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, kaggle_root, tmp_path):
    overrides = [f"+experiment={experiment}", f"data.root={kaggle_root}", f"paths.output_dir={tmp_path}",
                 f"data.cache_dir={tmp_path / 'cache'}", "model.loss.perceptual.weights=random"]
    cfg = compose_train(overrides)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    loggers = [instantiate(logger) for logger in (cfg.logger or {}).values()]
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    assert isinstance(trainer, L.Trainer) and isinstance(module, L.LightningModule)
    assert isinstance(datamodule, L.LightningDataModule)
    assert cfg.group == experiment


def test_experiment_values_win_over_defaults(tmp_path):
    cfg = compose_train(["+experiment=demo", f"paths.output_dir={tmp_path}"])
    assert cfg.data.source == "mni152" and cfg.trainer.accelerator == "cpu"
    assert cfg.model.generator.channels == 32 and cfg.model.loss.perceptual.weights == "random"
    ablation = compose_train(["+experiment=cbam_ablation", "data.root=/x", f"paths.output_dir={tmp_path}"])
    assert ablation.model.loss.perceptual.weights == "imagenet"  # research config: no silent fallback


def test_user_overrides_do_what_they_say(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "model.generator.blocks=3", "model.loss.adversarial.weight=0",
                             "trainer.max_epochs=3", "logger=csv"))
    module = instantiate(cfg.model)
    residual_blocks = [m for m in module.generator.body if type(m).__name__ == "ResidualBlock"]
    assert len(residual_blocks) == 3
    (generator,) = module.configure_optimizers()  # no adversarial term: no discriminator and no second optimizer
    assert module.discriminator is None and generator["lr_scheduler"]["name"] == "lr/generator"
    assert instantiate(cfg.trainer, logger=False).max_epochs == 3
    assert [type(instantiate(c)) for c in cfg.logger.values()] == [CSVLogger]


@pytest.mark.parametrize("override, key", [
    ("model.generator.attention=se", "model.generator.attention='se'"),
    ("model.loss.adversarial.weight=-1", "model.loss.adversarial.weight=-1"),
    ("model.loss.adversarial.kind=wgan", "model.loss.adversarial.kind='wgan'"),
    ("model.loss.pixel.kind=l3", "model.loss.pixel.kind='l3'"),
    ("model.loss.perceptual.weight=-0.5", "model.loss.perceptual.weight=-0.5"),
])
def test_bad_model_values_fail_at_instantiation_naming_the_key(override, key, kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, override))
    with pytest.raises(Exception, match=key.replace("[", r"\[")):
        instantiate(cfg.model)


@pytest.mark.parametrize("stage, pretrain_epochs, steps_per_batch", [("pretrain", 1, 1), ("gan", 0, 2)])
def test_two_step_fit_of_each_stage(stage, pretrain_epochs, steps_per_batch, kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, f"model.pretrain_epochs={pretrain_epochs}", "logger=csv"))
    metric = train(cfg)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * steps_per_batch  # Lightning counts optimizer steps
    keys = checkpoint["state_dict"].keys()
    assert not any("vgg" in key or key.startswith("perceptual") for key in keys)
    assert any(key.startswith("ema.module.") for key in keys)
    assert any(key.startswith("discriminator.") for key in keys)
    assert metric is not None and 5 < metric < 60
    assert (tmp_path / "samples" / "val_epoch000.png").is_file()


class StepWatcher(L.Callback):
    """Snapshots G and D weights before each optimizer step and after the batch."""

    def __init__(self):
        self.snapshots = []

    def _snapshot(self, module):
        return {name: [p.detach().clone() for p in getattr(module, name).parameters()]
                for name in ("generator", "discriminator")} | {
            "d_grads": [None if p.grad is None else p.grad.clone() for p in module.discriminator.parameters()]}

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.snapshots.append(self._snapshot(module))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.snapshots.append(self._snapshot(module))


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_discriminator_step_leaves_generator_unchanged_and_vice_versa(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=0", "logger=none",
                             "trainer.limit_train_batches=1"))
    watcher = StepWatcher()
    module = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[watcher], enable_checkpointing=False)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    before_d, before_g, after = watcher.snapshots  # before D's step, before G's step, after the batch
    assert _same(before_d["generator"], before_g["generator"])  # the D step did not touch G
    assert not _same(before_d["discriminator"], before_g["discriminator"])  # ... but did train D
    assert _same(before_g["discriminator"], after["discriminator"])  # the G step did not touch D
    assert not _same(before_g["generator"], after["generator"])  # ... but did train G
    assert all(grad is not None for grad in before_d["d_grads"])  # callbacks see D's gradients before its update
    assert all(grad is None for grad in before_g["d_grads"])  # the update used them up; G's backward added none


def test_resume_from_last_checkpoint_continues_the_step_count(kaggle_root, tmp_path):
    first = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=1", "logger=none"))
    train(first)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
    second = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=1", "logger=none",
                                "trainer.max_epochs=2", "ckpt_path=last"))
    train(second)
    resumed = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 + 4  # epoch 2 is a GAN epoch


def test_learning_rates_decay_at_the_milestones_also_across_a_resume(kaggle_root, tmp_path):
    schedule = ("model.pretrain_epochs=0", "model.lr_milestones=[1,2]", "model.lr_gamma=0.5", "logger=none",
                "test=false")
    train(compose_train(tiny(kaggle_root, tmp_path / "whole", *schedule, "trainer.max_epochs=3")))
    train(compose_train(tiny(kaggle_root, tmp_path / "resumed", *schedule, "trainer.max_epochs=2")))
    train(compose_train(tiny(kaggle_root, tmp_path / "resumed", *schedule, "trainer.max_epochs=3", "ckpt_path=last")))
    for run in ("whole", "resumed"):
        checkpoint = load_checkpoint(tmp_path / run / "checkpoints" / "last.ckpt")
        rates = [group["lr"] for state in checkpoint["optimizer_states"] for group in state["param_groups"]]
        assert rates == pytest.approx([1e-4 * 0.5**2] * 2), run  # epoch 2 ran after both milestones
        assert [state["last_epoch"] for state in checkpoint["lr_schedulers"]] == [2, 2], run


class RateWatcher(L.Callback):
    """Each optimizer's learning rate during each epoch's first batch."""

    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.rates.append([optimizer.param_groups[0]["lr"] for optimizer in trainer.optimizers])


def test_learning_rates_follow_the_milestones_across_the_stage_boundary_without_warnings(kaggle_root, tmp_path):
    """Epochs 0-1 pixel pretraining (D's optimizer never steps), 2-4 GAN; milestones in both stages. No schedule is
    stepped before its optimizer ("Detected call of `lr_scheduler.step()` before `optimizer.step()`")."""
    cfg = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=2", "model.lr_milestones=[1,3]",
                             "model.lr_gamma=0.5", "trainer.max_epochs=5", "trainer.limit_train_batches=1",
                             "trainer.check_val_every_n_epoch=5", "logger=none"))
    watcher = RateWatcher()
    module = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[watcher], enable_checkpointing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, datamodule=instantiate(cfg.data))
    assert not [w for w in caught if "lr_scheduler" in str(w.message)], [str(w.message) for w in caught]
    decays = [0, 1, 1, 2, 2]  # milestones at or before each epoch
    assert watcher.rates == [[1e-4 * 0.5**n] * 2 for n in decays]


def test_setting_a_schedule_to_an_epoch_gives_the_rates_of_stepping_to_it():
    def optimizer():
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)

    stepped, opt = MultiStepLR(optimizer(), [0, 2, 2, 5], 0.1), None
    for epoch in range(8):
        opt = optimizer()
        scheduler = EpochMultiStepLR(opt, [0, 2, 2, 5], 0.1)
        scheduler.set_epoch(epoch)
        assert opt.param_groups[0]["lr"] == stepped.get_last_lr()[0]  # the same float, not only close
        assert scheduler.last_epoch == epoch and scheduler.get_last_lr() == stepped.get_last_lr()
        stepped.optimizer.step()
        stepped.step()


def test_missing_data_root_says_which_key_and_what_to_pass(tmp_path):
    cfg = compose_train([f"paths.output_dir={tmp_path}"])
    with pytest.raises(Exception, match="data.root is not set.*folder holding Training/ and Testing/"):
        instantiate(cfg.data)


def test_gan_stage_starts_from_an_srresnet_checkpoint(kaggle_root, tmp_path):
    pretrain = compose_train(tiny(kaggle_root, tmp_path / "srresnet", "model=srresnet", "logger=none"))
    train(pretrain)
    last = tmp_path / "srresnet" / "checkpoints" / "last.ckpt"
    gan = compose_train(tiny(kaggle_root, tmp_path / "gan", f"model.init_from={last}"))
    generator = instantiate(gan.model).generator.state_dict()
    ema = {k.removeprefix("ema.module."): v for k, v in load_checkpoint(last)["state_dict"].items()
           if k.startswith("ema.module.")}
    assert generator.keys() == ema.keys() and all(torch.equal(generator[k], ema[k]) for k in ema)

    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("not a checkpoint")
    bad = compose_train(tiny(kaggle_root, tmp_path / "bad", f"model.init_from={not_a_checkpoint}"))
    with pytest.raises(Exception, match="notes.ckpt cannot be loaded as a checkpoint"):
        instantiate(bad.model)
