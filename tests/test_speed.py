"""The fast paths: LR made once for evaluation, nothing read back per batch, on-device batches, speed options."""

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode

from medivision.data import SRDataModule, degrade
from medivision.data.device_batches import DeviceBatches
from medivision.train import train
from tests.training import compose_train, tiny


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def datamodule(root, cache_dir, **kwargs) -> SRDataModule:
    dm = SRDataModule(source="kaggle", root=str(root), cache_dir=str(cache_dir), **kwargs)
    dm.setup()
    return dm


def batches(loader) -> list[dict[str, torch.Tensor]]:
    return [{key: value.clone() for key, value in batch.items()} for batch in loader]


# --- validation and test LR, made once ---------------------------------------------------------


def test_evaluation_lr_is_made_once_and_equals_a_fresh_degrade(kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path, batch_size=3)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        for raw in loader:
            batch = dm.on_after_batch_transfer(raw, 0)
            assert torch.equal(batch["lr"], degrade(batch["hr"], dm.scale, dm.degradation))
            assert set(batch) == {"hr", "lr", "label"}
    table = dm.evaluation_lr(torch.device("cpu"))
    assert table.shape == (len(dm.val_set) + len(dm.test_set), 1, 32, 32)
    assert dm.evaluation_lr(torch.device("cpu")) is table  # the next epoch looks it up again


def test_training_batches_are_still_degraded_from_their_augmented_hr(kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path, batch_size=4)
    raw = next(iter(dm.train_dataloader()))
    assert "eval_row" not in raw
    batch = dm.on_after_batch_transfer(raw, 0)
    assert torch.equal(batch["lr"], degrade(batch["hr"]))


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
    module.perceptual.network.register_forward_hook(lambda m, inputs, out: vgg_calls.append(out.requires_grad))
    module.discriminator.register_forward_hook(lambda m, inputs, out: d_calls.append(out.requires_grad))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    # VGG: once on SR (with a graph) and once on HR (without).
    assert sorted(vgg_calls) == [False, True]
    # D block: D(hr) and D(sr.detach()), both with a graph for D's step. G block: D(sr) for G's step; the
    # relativistic loss first needs D(hr) again, under the weights D's step has just changed, without a graph.
    assert d_calls == discriminator_calls


# --- batches cut on the device -----------------------------------------------------------------


def positions(hr: torch.Tensor, split_hr: torch.Tensor) -> list[int]:
    """Where each image of hr [B, 1, H, W] sits in split_hr [N, 1, H, W] (the splits hold no duplicates)."""
    same = (hr.flatten(1)[:, None] == split_hr.flatten(1)[None]).all(-1)
    assert same.sum(1).tolist() == [1] * len(hr)
    return same.float().argmax(1).tolist()


def test_device_batches_deliver_what_the_dataloader_does(kaggle_root, tmp_path):
    plain = datamodule(kaggle_root, tmp_path, batch_size=8)
    fast = datamodule(kaggle_root, tmp_path, batch_size=8, on_device=True)  # no trainer: the CPU
    train_batches = fast.train_dataloader()
    assert isinstance(train_batches, DeviceBatches) and len(train_batches) == len(plain.train_dataloader()) == 2
    orders = []
    for _ in range(2):  # two epochs
        epoch = batches(train_batches)
        assert all(b["hr"].shape == (8, 1, 128, 128) and b["hr"].dtype == torch.uint8 for b in epoch)
        order = [i for b in epoch for i in positions(b["hr"], fast.train_set.hr)]
        assert len(set(order)) == 16  # the ragged last batch dropped, as the DataLoader does
        assert torch.equal(torch.cat([b["label"] for b in epoch]), fast.train_set.labels[order])
        orders.append(order)
    assert orders[0] != orders[1]  # a new order every epoch ...
    again = datamodule(kaggle_root, tmp_path, batch_size=8, on_device=True).train_dataloader()
    assert [positions(b["hr"], fast.train_set.hr) for b in batches(again)] == [orders[0][:8], orders[0][8:]]
    for fast_loader, plain_loader in ((fast.val_dataloader(), plain.val_dataloader()),
                                      (fast.test_dataloader(), plain.test_dataloader())):
        expected = batches(plain_loader)  # ... and validation and test exactly as the DataLoader gives them
        got = batches(fast_loader)
        assert len(got) == len(expected)
        assert all(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(got, expected))


def test_device_batches_under_ddp_share_out_the_split(kaggle_root, tmp_path):
    dm = datamodule(kaggle_root, tmp_path)
    cpu = torch.device("cpu")
    test_rows = [torch.cat([b["eval_row"] for b in DeviceBatches(dm.test_set, cpu, 2, False, rank=rank,
                                                                   world_size=2)]) for rank in (0, 1)]
    assert sorted(torch.cat(test_rows).tolist()) == dm.test_set.eval_rows.tolist()  # each image once
    ranks = [DeviceBatches(dm.train_set, cpu, 4, True, seed=3, rank=rank, world_size=2) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    seen = [{i for b in loader for i in positions(b["hr"], dm.train_set.hr)} for loader in ranks]
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
        torch.testing.assert_close(fast.perceptual(sr, hr), plain.perceptual(sr, hr), atol=atol, rtol=1e-4)


def test_channels_last_changes_the_layout_not_the_results(kaggle_root, tmp_path):
    plain, fast = twin_modules(kaggle_root, tmp_path, "model.channels_last=true")
    for network in (fast.generator, fast.ema.module, fast.discriminator, fast.perceptual.network):
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
