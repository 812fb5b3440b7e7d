import logging

import pytest
import torch
from torchvision.models import vgg19

import medivision.training.vgg
from medivision.training.losses import (
    ADVERSARIAL,
    AdversarialLoss,
    AdversarialOptions,
    PerceptualLoss,
    PerceptualOptions,
    PixelLoss,
    PixelOptions,
)
from medivision.training.vgg import vgg19_layer_index


def test_pixel_loss_kinds_carry_their_weight():
    sr, hr = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert PixelLoss(PixelOptions("l1"))(sr, hr).item() == pytest.approx(0.5)
    assert PixelLoss(PixelOptions("mse", weight=2.0))(sr, hr).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="kind='l3'"):
        PixelOptions("l3")
    with pytest.raises(ValueError, match="weight=-1"):
        PixelOptions("l1", weight=-1)


def test_vgg_layer_names_map_to_conv_layers():
    assert vgg19_layer_index("conv1_1") == 0
    assert vgg19_layer_index("conv2_2") == 7
    assert vgg19_layer_index("conv5_4") == 34
    with pytest.raises(ValueError, match="conv6_1"):
        vgg19_layer_index("conv6_1")


def test_perceptual_vgg_is_frozen_unregistered_and_noted_once(monkeypatch, caplog):
    monkeypatch.setattr(medivision.training.vgg, "_warned_random_vgg", False)
    with caplog.at_level(logging.WARNING, logger="medivision.training.vgg"):
        loss = PerceptualLoss(PerceptualOptions("conv2_2", "random"))
        PerceptualLoss(PerceptualOptions("conv1_1", "random"))
    assert len([r for r in caplog.records if "RANDOM weights" in r.getMessage()]) == 1
    assert list(loss.parameters()) == []
    assert loss.state_dict() == {}
    vgg = loss.__dict__["vgg"]
    assert not vgg.training and all(not p.requires_grad for p in vgg.parameters())
    sr = torch.rand(2, 1, 32, 32, requires_grad=True)
    value = loss(sr, torch.rand(2, 1, 32, 32))
    value.backward()
    assert value.item() > 0 and sr.grad is not None
    assert loss(sr.detach(), sr.detach()).item() == 0.0


def test_perceptual_weights_from_a_path(tmp_path):
    reference = vgg19()
    path = tmp_path / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    loss = PerceptualLoss(PerceptualOptions("conv1_2", str(path)))
    images = torch.rand(1, 1, 16, 16)
    expected = reference.features[:3].eval()((images.expand(-1, 3, -1, -1) - loss.mean) / loss.std)
    assert torch.allclose(loss.features(images), expected, atol=1e-5)
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="is not a VGG19 state dict"):
        PerceptualLoss(PerceptualOptions("conv1_2", str(bad)))
    with pytest.raises(FileNotFoundError, match="no such file"):
        PerceptualLoss(PerceptualOptions("conv1_2", str(tmp_path / "missing.pth")))


def test_imagenet_weights_offline_say_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as error:  # a user error: one line from the command
        PerceptualLoss(PerceptualOptions("conv5_4", "imagenet"))
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "=random" in message


@pytest.mark.parametrize("kind", ["vanilla", "lsgan", "hinge", "relativistic"])
def test_adversarial_losses_reward_the_right_side(kind):
    loss = AdversarialLoss(AdversarialOptions(kind))
    confident_real, confident_fake = torch.full((8,), 3.0), torch.full((8,), -3.0)
    # D does better when it tells real from fake than when it mixes them up
    assert loss.discriminator(confident_real, confident_fake) < loss.discriminator(confident_fake, confident_real)
    # G does better when its fakes score as real
    assert loss.generator(confident_real, confident_fake) < loss.generator(confident_fake, confident_real)


def test_adversarial_weight_scales_the_generator_term_only():
    plain, weighted = AdversarialLoss(AdversarialOptions()), AdversarialLoss(AdversarialOptions(weight=0.1))
    real, fake = torch.randn(8), torch.randn(8)
    assert weighted.generator(fake, real).item() == pytest.approx(0.1 * plain.generator(fake, real).item())
    assert weighted.discriminator(real, fake).item() == pytest.approx(plain.discriminator(real, fake).item())


def test_adversarial_kinds_are_the_registry_and_a_wrong_one_names_them():
    assert list(ADVERSARIAL) == ["vanilla", "lsgan", "hinge", "relativistic"]
    with pytest.raises(ValueError, match="^kind='wgan' is not one of vanilla, lsgan, hinge, relativistic$"):
        AdversarialOptions("wgan")


def test_adversarial_losses_are_the_textbook_formulas():
    real, fake = torch.randn(8), torch.randn(8)
    softplus = torch.nn.functional.softplus  # binary cross-entropy with logits: softplus(-x) for 1, softplus(x) for 0
    expected = {
        "vanilla": (0.5 * (softplus(-real).mean() + softplus(fake).mean()), softplus(-fake).mean()),
        "lsgan": (0.5 * (((real - 1) ** 2).mean() + (fake**2).mean()), ((fake - 1) ** 2).mean()),
        "hinge": ((1 - real).clamp_min(0).mean() + (1 + fake).clamp_min(0).mean(), -fake.mean()),
        "relativistic": (0.5 * (softplus(-(real - fake.mean())).mean() + softplus(fake - real.mean()).mean()),
                         0.5 * (softplus(real - fake.mean()).mean() + softplus(-(fake - real.mean())).mean())),
    }
    for kind, (d_loss, g_loss) in expected.items():
        loss = AdversarialLoss(AdversarialOptions(kind))
        torch.testing.assert_close(loss.discriminator(real, fake), d_loss, msg=kind)
        torch.testing.assert_close(loss.generator(fake, real), g_loss, msg=kind)
