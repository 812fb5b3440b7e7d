import pytest
import torch

from medivision.nets import Discriminator, SRResNet
from medivision.nets.attention import ATTENTION, CBAM, ChannelGate, SpatialGate


@pytest.mark.parametrize("attention", ["none", "channel", "spatial", "cbam"])
def test_generator_maps_lr_to_4x_for_any_size(attention):
    generator = SRResNet(channels=16, blocks=2, attention=attention)
    assert generator(torch.rand(2, 1, 32, 32)).shape == (2, 1, 128, 128)
    assert generator(torch.rand(1, 1, 20, 28)).shape == (1, 1, 80, 112)


def test_attention_switch_builds_the_named_gate():
    assert isinstance(ATTENTION["none"](32, 16), torch.nn.Identity)
    assert isinstance(ATTENTION["channel"](32, 16), ChannelGate)
    assert isinstance(ATTENTION["spatial"](32, 16), SpatialGate)
    cbam = ATTENTION["cbam"](32, 16)
    assert isinstance(cbam, CBAM) and isinstance(cbam[0], ChannelGate) and isinstance(cbam[1], SpatialGate)
    block = SRResNet(channels=32, blocks=1, attention="cbam").body[0]
    assert isinstance(block.attention, CBAM)
    assert block.attention[0].mlp[0].out_channels == 2  # reduction 16


def test_gates_only_rescale_features():
    x = torch.randn(3, 32, 10, 10)
    for gate in (ChannelGate(32), SpatialGate(), CBAM(32)):
        y = gate(x)
        ratio = y / x
        assert y.shape == x.shape
        assert (ratio > 0).all() and (ratio < 1).all()


def test_bad_generator_settings_name_the_argument():
    # the network names its own argument; SRModule, built from the `model` config, adds "model.generator."
    with pytest.raises(ValueError, match="^attention='se' is not one of"):
        SRResNet(attention="se")
    with pytest.raises(ValueError, match=r"^scale=3 must be a power of two"):
        SRResNet(scale=3)


def test_bicubic_skip_starts_from_bicubic():
    generator = SRResNet(channels=8, blocks=1, attention="none")
    torch.nn.init.zeros_(generator.tail.weight)
    torch.nn.init.zeros_(generator.tail.bias)
    lr = torch.rand(1, 1, 16, 16)
    expected = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(generator(lr), expected, atol=1e-6)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_gives_one_logit_per_image(spectral_norm):
    discriminator = Discriminator(base_channels=8, spectral_norm=spectral_norm)
    assert discriminator(torch.rand(3, 1, 128, 128)).shape == (3,)
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
    assert has_batch_norm is not spectral_norm


def test_normalize_makes_the_generator_scale_equivariant():
    """normalize=true: a dark image is enhanced like the bright one it is a scaled copy of."""
    torch.manual_seed(0)
    generator = SRResNet(channels=8, blocks=1, normalize=True).eval()
    lr = torch.rand(2, 1, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(generator(0.05 * lr), 0.05 * generator(lr))
        plain = SRResNet(channels=8, blocks=1).eval()
        plain.load_state_dict(generator.state_dict())
        assert not torch.allclose(plain(0.05 * lr), 0.05 * plain(lr), atol=1e-4)
        assert generator(torch.zeros(1, 1, 8, 8)).abs().max() < 1e-3  # a blank image stays (nearly) blank
