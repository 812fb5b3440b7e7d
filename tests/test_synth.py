"""The synthetic-contrast source (data=synth) and intensity augmentation, on the real nilearn tissue maps."""

from __future__ import annotations

import pytest
import torch

from medivision.data.contrast import FAMILIES, ContrastOptions, synthesize
from medivision.data.datamodule import SRDataModule
from medivision.data.intensity_augment import IntensityAugment, augment_intensity
from medivision.data.settings import data_module
from medivision.data.tissue import TISSUES
from medivision.inference.checkpoints import load_checkpoint
from medivision.io.errors import one_line_errors
from medivision.train import train
from tests.training import compose_train, tiny


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("synth-cache"))


@pytest.fixture(scope="module")
def synth(cache) -> SRDataModule:
    dm = data_module(source="synth", cache_dir=cache, batch_size=4, seed=3)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def mni(cache) -> SRDataModule:
    dm = data_module(source="mni152", cache_dir=cache, batch_size=4, seed=3)
    dm.setup()
    return dm


def _tissue_means(hr: torch.Tensor, maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mean HR intensity where each tissue map is above 0.6, for the images holding 20 such pixels of each."""
    cores = {name: maps[:, channel] > 0.6 for channel, name in enumerate(TISSUES[1:], start=1)}
    present = torch.stack([core.sum((1, 2)) >= 20 for core in cores.values()]).all(0)
    assert present.sum() >= 10
    return {name: (hr[present, 0] * core[present]).sum((1, 2)) / core[present].sum((1, 2)) for name, core in
            cores.items()}


def test_synth_has_the_slices_and_splits_of_the_template(synth, mni):
    assert synth.train_set.hr.shape[1:] == (len(TISSUES), 128, 128) and synth.train_set.hr.dtype == torch.uint8
    for mine, template in zip(synth._datasets(), mni._datasets()):
        assert torch.equal(mine.rows, template.rows) and len(mine) > 0
        assert torch.equal(mine.hr[:, :1], template.hr)  # channel 0 is the T1, read as data=mni152 reads it
    csf = synth.train_set.hr[:, 3].float() / 255
    assert 0.02 < csf.mean() < 0.2 and csf.amax() > 0.9  # ventricles and sulci


def test_validation_contrasts_are_seeded_per_image_and_training_draws_fresh(synth, cache):
    other = data_module(source="synth", cache_dir=cache, batch_size=7, seed=3)  # other batches, same seed
    first = torch.cat([b["hr"] for b in map(synth.evaluation_batch, synth.val_dataloader())])
    again = torch.cat([b["hr"] for b in other.evaluation_batches("val")])
    assert torch.equal(first, again)
    assert first.isfinite().all() and 0 <= first.min() and first.max() <= 1
    reseeded = data_module(source="synth", cache_dir=cache, batch_size=4, seed=4)
    assert not torch.equal(first, torch.cat([b["hr"] for b in reseeded.evaluation_batches("val")]))
    stored = synth.train_set.hr[:6]
    one, two = synth.training_pair(stored)[0], synth.training_pair(stored)[0]
    assert one.shape == (6, 1, 128, 128) and not torch.equal(one, two)


def test_the_template_family_is_the_real_t1_and_the_families_order_the_tissues(synth, mni):
    maps = synth.val_set.hr.float() / 255
    seeds = list(range(len(maps)))
    template = synthesize(maps, ContrastOptions(families=("template",)), seeds)
    torch.testing.assert_close(template, mni.val_set.hr.float() / 255)
    plain = dict(bias=0.0, gamma=0.0, blur=0.0)
    t1 = _tissue_means(synthesize(maps, ContrastOptions(families=("t1",), **plain), seeds), maps)
    assert (t1["wm"] > t1["gm"]).all() and (t1["gm"] > t1["csf"]).all()
    for family in ("t2", "pd"):  # CSF-bright
        means = _tissue_means(synthesize(maps, ContrastOptions(families=(family,), **plain), seeds), maps)
        assert (means["csf"] > means["gm"]).all() and (means["gm"] > means["wm"]).all(), family
    flair = _tissue_means(synthesize(maps, ContrastOptions(families=("flair",), **plain), seeds), maps)
    assert (flair["gm"] > flair["wm"]).all() and (flair["wm"] > flair["csf"]).all()
    assert set(FAMILIES) == {"t1", "flair", "t2", "pd", "random"}


def test_bias_blur_noise_and_geometry_change_the_images(synth):
    maps = synth.val_set.hr[:4].float() / 255
    seeds = [1, 2, 3, 4]
    plain = ContrastOptions(families=("t2",), bias=0.0, gamma=0.0, blur=0.0)
    base = synthesize(maps, plain, seeds)
    assert base.amax((1, 2, 3)).allclose(torch.ones(4))  # scaled to each image's own maximum
    for change in ({"bias": 0.5}, {"gamma": 0.5}, {"blur": 1.5}, {"noise": 0.05}):
        changed = synthesize(maps, ContrastOptions(**{**plain.__dict__, **change}), seeds)
        assert (changed - base).abs().mean() > 1e-3, change
    blurred = synthesize(maps, ContrastOptions(**{**plain.__dict__, "blur": 1.5}), seeds)
    assert blurred.diff(dim=-1).abs().mean() < base.diff(dim=-1).abs().mean()  # smoother
    torch.manual_seed(0)
    moved = synthesize(maps, ContrastOptions(families=("template",), rotation=20.0, zoom=0.2))  # training draws
    assert not torch.allclose(moved, maps[:, :1], atol=1e-3)


def test_real_scan_realism_noise_floor_and_head(synth):
    maps = synth.val_set.hr[:6].float() / 255
    seeds = list(range(6))
    plain = ContrastOptions(families=("t1",), bias=0.0, gamma=0.0, blur=0.0)
    base = synthesize(maps, plain, seeds)
    outside = (maps[:, 1:].sum(1, keepdim=True) < 0.05) & (base < 0.02)  # background: no brain, no signal
    assert base[outside].mean() < 1e-3

    noisy = synthesize(maps, ContrastOptions(**{**plain.__dict__, "noise": 0.05}), seeds)
    assert 0.005 < noisy[outside].mean() < 0.05  # a Rician floor in the HR itself: the background is noise, not zero
    # a head: the maps are shrunk to make room, then rings of skull, scalp fat and skin go around the brain
    bare = synthesize(maps, ContrastOptions(families=("template",)), seeds)
    head = synthesize(maps, ContrastOptions(families=("template",), head=1.0), seeds)
    assert torch.equal(bare, maps[:, :1])
    added = head * (bare < 0.02)  # what lies where the bare template is background
    assert (added > 0.25).float().mean((1, 2, 3)).gt(0.005).all()


def test_intensity_augmentation_is_off_by_default_and_keeps_the_unit_range(synth):
    hr = synth.val_set.hr[:4, :1].float() / 255
    assert augment_intensity(hr, IntensityAugment()) is hr
    torch.testing.assert_close(augment_intensity(hr, IntensityAugment(invert=1.0)), 1 - hr)
    torch.manual_seed(1)
    changed = augment_intensity(hr, IntensityAugment(gamma=0.5, contrast=0.3))
    assert changed.shape == hr.shape and 0 <= changed.min() and changed.max() <= 1
    assert (changed - hr).abs().mean() > 1e-3
    dm = data_module(source="mni152", cache_dir=synth.source.cache_dir, intensity_augment={"invert": 1.0},
                     augment=False)
    dm.setup()
    hr_pair, lr = dm.training_pair(dm.train_set.hr[:2])
    torch.testing.assert_close(hr_pair, 1 - dm.train_set.hr[:2].float() / 255)
    torch.testing.assert_close(lr, dm.training_pair(dm.train_set.hr[:2])[1])  # LR made from the changed HR


@pytest.mark.parametrize(("arguments", "message"), [
    ({"contrast": {"families": ["t3"]}}, "data.contrast.families=['t3'] must be a non-empty list of template, t1"),
    ({"contrast": {"bias": -1}}, "data.contrast.bias=-1 must be a number >= 0"),
    ({"contrast": {"speed": 1}}, "data.contrast.speed is not an option"),
    ({"contrast": {"head": 1.5}}, "data.contrast.head=1.5 must be a probability in [0, 1]"),
    ({"intensity_augment": {"invert": 2}}, "data.intensity_augment.invert=2 must be a probability in [0, 1]"),
    ({"intensity_augment": {"contrast": 1.5}}, "data.intensity_augment.contrast=1.5 must be a number in [0, 1)"),
])
def test_bad_contrast_and_augmentation_settings_get_one_line(arguments, message, tmp_path, capsys):
    @one_line_errors("train")
    def build() -> None:
        data_module(source="synth", cache_dir=str(tmp_path), **arguments)

    with pytest.raises(SystemExit):
        build()
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_the_general_recipe_trains_on_synthetic_contrasts_and_its_checkpoint_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    cfg = compose_train(tiny(tmp_path, out, "+experiment=general_demo", "logger=csv", "test=false"))
    assert cfg.data.source == "synth" and cfg.data.degradation == "random" and cfg.model.gan is False
    train(cfg)
    checkpoint = load_checkpoint(out / "checkpoints" / "last.ckpt")
    provenance = checkpoint["provenance"]
    assert provenance["data"]["source"] == "synth" and provenance["data"]["contrast"]["families"][0] == "template"
    assert provenance["command"].startswith("python -m medivision.train") and provenance["commit"]
