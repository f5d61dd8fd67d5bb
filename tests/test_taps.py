"""Layer-tap colouring: stable, in range, and faithful to the activations."""

from __future__ import annotations

import pytest
import torch

from ganinstrument.generator.taps import activation_to_rgb, image_to_uint8, tap_to_uint8


def test_image_to_uint8_maps_range_and_layout():
    img = torch.tensor([-1.0, 0.0, 1.0, 5.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    out = image_to_uint8(img)
    assert out.dtype == torch.uint8 and out.shape == (1, 2, 2, 3)
    assert out[0, :, :, 0].flatten().tolist() == [0, 128, 255, 255]


def test_projection_is_stable_across_calls_and_scale_invariant():
    x = torch.randn(1, 40, 8, 8, generator=torch.Generator().manual_seed(1))
    a = activation_to_rgb(x)
    b = activation_to_rgb(x * 7.0 + 3.0)  # per-frame normalisation removes gain and offset
    assert a.shape == (1, 3, 8, 8)
    assert torch.allclose(a, b, atol=1e-5)
    assert a.abs().max() <= 1.0


def test_projection_differs_by_seed_and_follows_the_content():
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(activation_to_rgb(x, seed=0), activation_to_rgb(x, seed=1))
    assert not torch.allclose(activation_to_rgb(x), activation_to_rgb(y))


def test_channels_mode_shows_chosen_channels():
    x = torch.zeros(1, 5, 4, 4)
    x[0, 4, :2] = 1.0  # only channel 4 has structure
    rgb = activation_to_rgb(x, mode="channels", channels=(4, 0, 0))
    assert rgb[0, 0, :2].mean() > 0 > rgb[0, 0, 2:].mean()
    with pytest.raises(ValueError, match="out of range"):
        activation_to_rgb(x, mode="channels", channels=(0, 1, 9))


def test_energy_mode_is_grey_and_brighter_where_activations_are_larger():
    x = torch.ones(1, 6, 4, 4)
    x[..., :2, :] *= 10
    rgb = activation_to_rgb(x, mode="energy")
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])
    assert rgb[0, 0, :2].min() > rgb[0, 0, 2:].max()


def test_tap_to_uint8_handles_any_channel_count():
    for channels in (1, 2, 3, 7, 512):
        out = tap_to_uint8(torch.randn(2, channels, 5, 6))
        assert out.shape == (2, 5, 6, 3) and out.dtype == torch.uint8


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="unknown tap mode"):
        activation_to_rgb(torch.randn(1, 4, 2, 2), mode="rainbow")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        activation_to_rgb(torch.randn(4, 2, 2))
