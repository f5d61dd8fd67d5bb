"""The activation bending transforms (scene/activation_bends.py) on random feature maps: known
answers (rolling, scipy.ndimage's morphology and Sobel), neutral amounts, channel masks, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ganinstrument.scene.activation_bends import NEUTRAL, RANGES, TRANSFORMS, bend


@pytest.fixture
def x():
    return torch.randn(2, 5, 12, 16, generator=torch.Generator().manual_seed(3))


def test_translate_by_k_pixels_is_rolling_the_maps(x):
    assert torch.equal(bend(x, "translate_x", 3 / 16), torch.roll(x, 3, dims=3))
    assert torch.equal(bend(x, "translate_y", -0.25), torch.roll(x, -3, dims=2))
    assert torch.equal(bend(x, "translate_x", 9.0), torch.roll(x, 8, dims=3))  # (clamped to half the width)


@pytest.mark.parametrize("name", ["erode", "dilate"])
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_erode_and_dilate_are_scipys_grey_morphology(x, name, radius):
    op = ndimage.grey_erosion if name == "erode" else ndimage.grey_dilation
    got = bend(x, name, radius).numpy()
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            want = op(x[n, c].numpy(), size=(2 * radius + 1, 2 * radius + 1), mode="nearest")
            np.testing.assert_array_equal(got[n, c], want)


def test_sobel_at_one_is_scipys_gradient_magnitude(x):
    got = bend(x, "sobel", 1.0).numpy()
    for c in range(x.shape[1]):
        m = x[0, c].numpy().astype(np.float64)
        want = np.hypot(ndimage.sobel(m, axis=1, mode="nearest"), ndimage.sobel(m, axis=0, mode="nearest"))
        np.testing.assert_allclose(got[0, c], want, rtol=1e-5, atol=1e-5)


def test_known_answers_of_the_simple_ones(x):
    assert torch.equal(bend(x, "flip", 1.0), torch.flip(x, dims=(3,)))
    assert torch.equal(bend(x, "invert", 1.0), -x)
    assert torch.equal(bend(x, "ablate", 1.0), torch.zeros_like(x))
    square = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    turned = bend(square, "rotate", 90.0)
    assert torch.allclose(turned, torch.rot90(square, 1, dims=(2, 3)), atol=1e-5) or \
        torch.allclose(turned, torch.rot90(square, -1, dims=(2, 3)), atol=1e-5)  # a quarter turn, exactly
    assert torch.allclose(bend(x, "rotate", 180.0), torch.flip(x, dims=(2, 3)), atol=1e-5)  # (12 x 16: not square)
    ramp = torch.arange(16.0).sub(7.5).expand(1, 1, 12, 16)  # x, centred, on a wide map
    zoomed = bend(ramp, "scale", 2.0)  # about the centre: half the slope (bilinear is exact on a ramp)
    assert torch.allclose(zoomed[..., 2:-2], ramp[..., 2:-2] / 2, atol=1e-5)
    binary = bend(x, "threshold", 1.0)
    for n, c in ((0, 0), (1, 4)):
        m = x[n, c]
        assert set(binary[n, c].unique().tolist()) <= {m.min().item(), m.max().item()}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_transform_is_the_identity_at_neutral_and_changes_the_maps_away_from_it(x, name):
    assert bend(x, name, NEUTRAL[name]) is x  # (returned as it is: nothing computed)
    lo, hi = RANGES[name]
    far = hi if hi != NEUTRAL[name] else lo
    assert (bend(x, name, far) - x).abs().mean() > 0.1


@pytest.mark.parametrize("name", ["rotate", "scale", "invert", "threshold", "erode", "dilate", "sobel", "ablate"])
def test_a_larger_amount_changes_the_maps_more(name):
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 4, 36, 36, generator=torch.Generator().manual_seed(1)),
                                            5, stride=1, padding=2)  # (feature maps have structure)
    lo, hi = RANGES[name]
    far = hi if hi != NEUTRAL[name] else lo
    steps = [NEUTRAL[name] + f * (far - NEUTRAL[name]) for f in (0.25, 0.5, 1.0)]
    if name == "rotate":
        steps = [5.0, 10.0, 20.0]  # (past a quarter turn, random maps differ from themselves alike)
    changes = [(bend(smooth, name, a) - smooth).abs().mean().item() for a in steps]
    assert changes[0] < changes[1] < changes[2], changes


@pytest.mark.parametrize("name", TRANSFORMS)
def test_chosen_channels_are_bent_and_only_they_and_dtypes_stay(x, name):
    far = RANGES[name][1] if RANGES[name][1] != NEUTRAL[name] else RANGES[name][0]
    chosen, others = torch.tensor([0, 2]), torch.tensor([1, 3, 4])
    out = bend(x, name, far, channels=chosen)
    assert torch.equal(out[:, others], x[:, others])
    assert torch.equal(out[:, chosen], bend(x[:, chosen], name, far))
    half = bend(x.half(), name, far)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()


def test_hostile_amounts_and_names(x):
    assert torch.equal(bend(x, "rotate", float("nan")), x)  # (not finite: neutral)
    assert torch.equal(bend(x, "erode", 1e9), bend(x, "erode", 8))  # clamped to the range
    with pytest.raises(ValueError, match="unknown bend 'melt'; the transforms: translate_x"):
        bend(x, "melt", 1.0)
