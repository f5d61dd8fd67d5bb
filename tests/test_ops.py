"""Shared low-level generator ops against direct (slow, obvious) formulations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganinstrument.generator import ops


def _zero_stuff(x, up):
    n, c, h, w = x.shape
    out = torch.zeros([n, c, h * up, w * up], dtype=x.dtype)
    out[:, :, ::up, ::up] = x
    return out


def _reference_filter(x, f, pad):
    """Zero padding then true 2-D convolution with f, channel by channel."""
    x = F.pad(x, list(pad))
    c = x.shape[1]
    return F.conv2d(x, f.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


@pytest.mark.parametrize("f", [[1, 3, 3, 1], [1, 2, 1], [[1, 2], [3, 4]]])
def test_upsample2d_matches_zero_stuffing(f):
    x = torch.randn(2, 3, 5, 6)
    f2 = ops.setup_filter(f)
    fh, fw = f2.shape
    pad = ((fw + 1) // 2, (fw - 2) // 2, (fh + 1) // 2, (fh - 2) // 2)
    expected = _reference_filter(_zero_stuff(x, 2), f2 * 4, pad)
    torch.testing.assert_close(ops.upsample2d(x, f2), expected, rtol=1e-5, atol=1e-5)


def test_conv_transpose_fir_matches_upsample_then_conv():
    x, w = torch.randn(2, 4, 5, 5), torch.randn(6, 4, 3, 3)
    f = ops.setup_filter([1, 3, 3, 1])
    # NVlabs: pad, upsample, filter (gain 4), then a true convolution (flipped weight).
    up = _reference_filter(_zero_stuff(x, 2), f * 4, (3, 2, 3, 2))
    expected = F.conv2d(up, w.flip([2, 3]))
    torch.testing.assert_close(ops.conv_transpose_fir(x, w, f, padding=1), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_bias_act(act, clamp):
    x, b = torch.randn(3, 5, 4, 4) * 3, torch.randn(5)
    y = x + b[None, :, None, None]
    y = {"linear": y, "relu": F.relu(y), "lrelu": F.leaky_relu(y, 0.2)}[act]
    y = y * (1 if act == "linear" else math.sqrt(2))
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    torch.testing.assert_close(ops.bias_act(x, b, act=act, clamp=clamp), y)
    with pytest.raises(ValueError, match="activation"):
        ops.bias_act(x, b, act="gelu")


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("grouped_on_cpu", [True, False])
def test_modulated_conv2d_fused_equals_direct(demodulate, up, grouped_on_cpu, monkeypatch):
    monkeypatch.setattr(ops, "GROUPED_CONV_ON_CPU", grouped_on_cpu)
    x, weight, styles = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    f = ops.setup_filter([1, 3, 3, 1])
    noise, bias = torch.randn(6 * up, 6 * up), torch.randn(5)
    outs = []
    for i in range(3):  # the obvious way: build each sample's weight and convolve
        w = weight * styles[i][None, :, None, None]
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        y = F.conv2d(x[i:i + 1], w, padding=1) if up == 1 else ops.conv_transpose_fir(x[i:i + 1], w, f, padding=1)
        outs.append(2.0 * (y + noise) + bias[None, :, None, None])
    expected = torch.cat(outs)
    for fused in (True, False):
        got = ops.modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, padding=1, resample_filter=f,
                                   fused_modconv=fused, gain=2.0, bias=bias, noise=noise)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_float16_unfused_modconv_stays_in_range():
    """float16 only runs on a GPU in the instrument; this checks the maths of the unfused path
    (taken with fused_modconv=False) with one CPU float16 conv: a full-width layer's raw weight
    sums 512*3*3 products, which overflow float16 before the demodulation unless the weight is
    shrunk first. The result must match float32."""
    torch.manual_seed(0)
    # The worst case within NVlabs' conv_clamp of 256 for float16 layers: inputs near the clamp
    # and weights and styles that all pull the same way.
    x = torch.full((1, 512, 8, 8), 200.0)
    weight, styles = torch.randn(64, 512, 3, 3).abs(), torch.rand(1, 512) + 0.5
    expected = ops.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=False)
    got = ops.modulated_conv2d(x.half(), weight, styles, padding=1, fused_modconv=False)
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=2e-3 * float(expected.std()))


def test_image_to_uint8_makes_nan_grey():
    from ganinstrument.generator.taps import image_to_uint8

    img = torch.tensor([[[[float("nan"), 1.0], [-1.0, float("inf")]]]])  # [1, 1, 2, 2]
    assert image_to_uint8(img)[0, :, :, 0].tolist() == [[128, 255], [0, 255]]
