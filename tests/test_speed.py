"""The fast paths: LR made once for evaluation, nothing read back per batch, on-device batches, speed options."""

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DistributedSampler

from medivision.data.datamodule import SRDataModule
from medivision.data.degradations import degrade, sample_seeds
from medivision.data.device_batches import DeviceBatches
from medivision.data.settings import data_module
from medivision.train import train
from tests.training import compose_train, tiny


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def datamodule(root, cache_dir, **kwargs) -> SRDataModule:
    dm = data_module(source="kaggle", root=str(root), cache_dir=str(cache_dir), **kwargs)
    dm.setup()
    return dm


def batches(loader) -> list[dict[str, torch.Tensor]]:
    return [{key: value.clone() for key, value in batch.items()} for batch in loader]


# --- validation and test LR, made once ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["bicubic", "kspace_noise"])
def test_evaluation_lr_is_made_once_and_equals_a_fresh_degrade(kind, kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path, batch_size=3, degradation=kind, seed=5)
    hr_table, table = dm.evaluation_tables(torch.device("cpu"))
    assert hr_table is None  # the cached images are the HR
    assert dm.evaluation_tables(torch.device("cpu"))[1] is table  # the next epoch looks it up again
    assert table[dm.train_set.rows].isnan().all()  # training images have no fixed LR
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        for raw in loader:
            batch = dm.on_after_batch_transfer(dict(raw), 0)  # validating or testing: looked up
            assert set(batch) == {"hr", "lr", "label", "index"}
            # A batch of 3 degraded now, with each image's seed, gives what the table made in chunks of 256.
            seeds = sample_seeds(5, raw["index"]) if kind == "kspace_noise" else None
            torch.testing.assert_close(batch["lr"], degrade(batch["hr"], 4, kind, seeds=seeds), rtol=0, atol=1e-6)


# --- nothing read back to the host per training batch ------------------------------------------


class HostReads(TorchDispatchMode):
    """Records every read of a tensor value by the host (`.item()`, `float(t)`, `if t:`), except of the
    tensors in `host_side`. On a GPU each such read waits for the device to finish all queued work."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.host_side: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and id(args[0]) not in self.host_side:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


class WatchBatches(L.Callback):
    """Watches from the second training batch to the end of the last: fetching, transfer, augmentation,
    degradation, both optimizer blocks, the EMA, logging and the progress bar. Adam's step counters are
    host-side: PyTorch keeps them on the CPU for GPU parameters too (unless capturable or fused)."""

    def __init__(self):
        self.mode = HostReads()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.mode.host_side = {id(state["step"]) for opt in trainer.optimizers for state in opt.state.values()}
        if batch_idx == 1:
            self.mode.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == trainer.num_training_batches - 1:
            self.mode.__exit__(None, None, None)


@pytest.mark.parametrize("log_every_n_steps, reads", [(1000, False), (1, True)])
def test_training_batches_read_nothing_back_between_logging_steps(log_every_n_steps, reads, kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=0", "logger=csv",
                             "trainer.limit_train_batches=4", f"trainer.log_every_n_steps={log_every_n_steps}",
                             "trainer.enable_progress_bar=true"))
    watcher = WatchBatches()
    loggers = [instantiate(logger) for logger in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=[watcher], enable_checkpointing=False)
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    # Logging turns the logged losses into numbers every log_every_n_steps; nothing else may read back.
    assert bool(watcher.mode.reads) is reads


# --- the work in one GAN step ------------------------------------------------------------------


@pytest.mark.parametrize("kind, discriminator_calls", [
    ("vanilla", [True, True, True]),
    ("relativistic", [True, True, False, True]),
])
def test_one_gan_step_runs_vgg_once_on_hr_and_the_discriminator_only_where_needed(
    kind, discriminator_calls, kaggle_root, tmp_path
):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "model.pretrain_epochs=0", "logger=none",
                             f"model.loss.adversarial.kind={kind}", "trainer.limit_train_batches=1"))
    module = instantiate(cfg.model)
    vgg_calls, d_calls = [], []  # per forward: whether its output carries a graph for backward
    module.losses.perceptual.network.register_forward_hook(lambda m, inputs, out: vgg_calls.append(out.requires_grad))
    module.discriminator.register_forward_hook(lambda m, inputs, out: d_calls.append(out.requires_grad))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    # VGG: once on SR (with a graph) and once on HR (without).
    assert sorted(vgg_calls) == [False, True]
    # D block: D(hr) and D(sr.detach()), both with a graph for D's step. G block: D(sr) for G's step; the
    # relativistic loss first needs D(hr) again, under the weights D's step has just changed, without a graph.
    assert d_calls == discriminator_calls


# --- batches cut on the device -----------------------------------------------------------------


def same_batches(got: list[dict], expected: list[dict]) -> bool:
    return len(got) == len(expected) and all(
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(got, expected)
    )


def test_device_batches_deliver_what_the_dataloader_does(kaggle_root, tmp_path):
    plain = datamodule(kaggle_root, tmp_path, batch_size=8)
    fast = datamodule(kaggle_root, tmp_path, batch_size=8, on_device=True)  # no trainer: the CPU
    train_batches, plain_batches = fast.train_dataloader(), plain.train_dataloader()
    assert isinstance(train_batches, DeviceBatches) and len(train_batches) == len(plain_batches) == 2
    epochs = []
    for epoch in range(2):  # Lightning sets the sampler's epoch before each pass
        train_batches.sampler.set_epoch(epoch)
        plain_batches.sampler.set_epoch(epoch)
        got = batches(train_batches)
        assert all(b["hr"].shape == (8, 1, 128, 128) and b["hr"].dtype == torch.uint8 for b in got)
        assert same_batches(got, batches(plain_batches))  # the DataLoader's order, ragged batch dropped alike
        epochs.append(torch.cat([b["index"] for b in got]))
    assert not torch.equal(epochs[0], epochs[1])  # a new order every epoch
    for fast_loader, plain_loader in ((fast.val_dataloader(), plain.val_dataloader()),
                                      (fast.test_dataloader(), plain.test_dataloader())):
        assert same_batches(batches(fast_loader), batches(plain_loader))


def test_device_batches_resume_in_the_middle_of_an_epoch(kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path, batch_size=4, on_device=True)
    first = dm.train_dataloader()
    first.sampler.set_epoch(3)
    whole = []
    for batch in first:
        whole.append({key: value.clone() for key, value in batch.items()})
        if len(whole) == 2:
            saved = first.state_dict()  # what a checkpoint written after the second batch holds
    assert saved == {"epoch": 3, "served": 2}
    resumed = dm.train_dataloader()
    resumed.load_state_dict(saved)
    resumed.sampler.set_epoch(3)
    assert same_batches(batches(resumed), whole[2:])
    resumed.sampler.set_epoch(4)
    assert len(batches(resumed)) == len(whole)  # the next epoch starts from its first batch


def test_device_batches_under_ddp_share_out_the_split(kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path)
    cpu = torch.device("cpu")
    test_rows = [
        torch.cat([b["index"] for b in DeviceBatches(
            dm.test_set, cpu, 2, UnrepeatedDistributedSampler(dm.test_set, num_replicas=2, rank=rank, shuffle=False)
        )]) for rank in (0, 1)
    ]
    assert sorted(torch.cat(test_rows).tolist()) == sorted(dm.test_set.rows.tolist())  # each image once
    ranks = [DeviceBatches(dm.train_set, cpu, 4, DistributedSampler(dm.train_set, 2, rank, seed=3), drop_last=True)
             for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    seen = [{i for b in loader for i in b["index"].tolist()} for loader in ranks]
    assert not seen[0] & seen[1]


def test_on_device_training_validates_as_the_dataloader_does(kaggle_root, tmp_path):
    cfg = compose_train(tiny(kaggle_root, tmp_path, "data.on_device=true", "logger=none", "test=false",
                             "trainer.limit_val_batches=1.0"))
    assert 5 < train(cfg) < 60
    module = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    on_device = trainer.validate(module, datamodule=instantiate(cfg.data), verbose=False)
    from_loader = trainer.validate(module, datamodule=instantiate(cfg.data, on_device=False), verbose=False)
    assert on_device == from_loader


# --- channels_last, torch.compile, bf16 --------------------------------------------------------


def twin_modules(root, out, *options):
    """The tiny model built twice from the same seed: plainly, and with `options`."""
    overrides = tiny(root, out, "model.pretrain_epochs=0")
    torch.manual_seed(0)
    plain = instantiate(compose_train(overrides).model)
    torch.manual_seed(0)
    return plain, instantiate(compose_train([*overrides, *options]).model)


def assert_same_networks(plain, fast, atol):
    lr, hr = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        for name in ("generator", "discriminator"):
            x = lr if name == "generator" else hr
            torch.testing.assert_close(getattr(fast, name)(x), getattr(plain, name)(x), atol=atol, rtol=1e-4)
        torch.testing.assert_close(fast(lr), plain(lr), atol=atol, rtol=1e-4)  # the EMA generator
        sr = plain.generator(lr)
        torch.testing.assert_close(fast.losses.perceptual(sr, hr), plain.losses.perceptual(sr, hr), atol=atol,
                                   rtol=1e-4)


def test_channels_last_changes_the_layout_not_the_results(kaggle_root, tmp_path):
    plain, fast = twin_modules(kaggle_root, tmp_path, "model.channels_last=true")
    for network in (fast.generator, fast.ema.module, fast.discriminator, fast.losses.perceptual.network):
        convolution = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))
        assert convolution.weight.is_contiguous(memory_format=torch.channels_last)
    assert_same_networks(plain, fast, atol=1e-5)
    assert fast.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.slow
def test_compile_changes_the_speed_not_the_results(kaggle_root, tmp_path):
    import shutil

    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("torch.compile on the CPU needs a C++ compiler, and this machine has none")
    plain, fast = twin_modules(kaggle_root, tmp_path, "model.compile=true", "model.channels_last=true")
    assert_same_networks(plain, fast, atol=1e-4)
    assert fast.state_dict().keys() == plain.state_dict().keys()  # checkpoints stay loadable


@pytest.mark.slow
def test_the_gpu_recipe_trains_on_the_cpu(kaggle_root, tmp_path):
    """data.on_device, model.channels_last, model.compile and bf16-mixed together, as trainer=gpu_fast runs."""
    cfg = compose_train(tiny(kaggle_root, tmp_path, "data.on_device=true", "model.channels_last=true",
                             "model.compile=true", "trainer.precision=bf16-mixed", "model.pretrain_epochs=0",
                             "logger=none", "test=false"))
    assert 5 < train(cfg) < 60
