"""StyleGAN3 signal processing: low-pass filter design, filtered leaky ReLU, Fourier features.

Written from the Alias-Free GAN paper (Karras et al. 2021), not from NVlabs code. The
reference semantics of one layer's nonlinearity (NVlabs `filtered_lrelu`) are:

    x -> zero-stuff by `up` -> pad (negative = crop) -> convolve with fu (gain up**2)
      -> leaky ReLU * gain -> clamp -> convolve with fd -> keep every `down`-th sample

Here the same result is computed without ever materialising the zero-stuffed signal:

- upsampling is a depthwise transposed convolution with stride `up` (polyphase: each output
  sample only sees the non-zero inputs), with the 2-D kernel outer(fu, fu) * up**2 * gain;
  the pad/crop becomes the transposed convolution's own padding;
- the lrelu gain is folded into that kernel (lrelu(g*x) = g*lrelu(x) for g > 0), so the
  nonlinearity is two in-place passes (leaky_relu_, clamp_);
- downsampling is a depthwise convolution with stride `down` that only computes the kept
  samples (kernel outer(fd, fd), or the 2-D radial fd of StyleGAN3-R).

Depthwise convolutions are much faster in channels-last memory layout on CPU (oneDNN), so the
synthesis network keeps its activations channels-last.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------
# Filter design (float64 numpy, returned as float32 tensors like the stored buffers)


def kaiser_beta_for(numtaps: int, width: float) -> float:
    """Kaiser window beta for a transition band `width` (a fraction of Nyquist), as in
    Kaiser's empirical formulas (the ones scipy's firwin uses)."""
    atten = 2.285 * (numtaps - 1) * math.pi * width + 7.95  # dB
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """A Kaiser-windowed low-pass FIR filter, normalised to unit DC gain.

    numtaps: filter length; cutoff: -6 dB frequency; width: transition band width (both in the
    same units as the sampling rate `fs`). Returns None for numtaps == 1 (identity), a 1-D
    float32 tensor [numtaps] (separable: apply along both axes), or for `radial` a 2-D
    [numtaps, numtaps] jinc (circularly symmetric) filter.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    nyquist = fs / 2
    beta = kaiser_beta_for(numtaps, width / nyquist)
    window = np.kaiser(numtaps, beta)  # [T]
    t = np.arange(numtaps) - (numtaps - 1) / 2  # tap positions, in samples
    if not radial:
        fc = cutoff / nyquist
        f = fc * np.sinc(fc * t) * window  # ideal low-pass impulse response, windowed
        return torch.as_tensor(f / f.sum(), dtype=torch.float32)
    pos = t / fs
    r = np.hypot(*np.meshgrid(pos, pos))  # [T, T] radius
    arg = torch.as_tensor(2 * math.pi * cutoff * r, dtype=torch.float64)
    j1 = torch.special.bessel_j1(arg).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(r > 0, j1 / (math.pi * np.maximum(r, 1e-300)), cutoff)  # jinc; limit at r=0
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# Filtered leaky ReLU


def _kernel_2d(f: torch.Tensor | None, scale: float) -> torch.Tensor:
    """A stored filter (None, [T] separable or [T, T] 2-D) as a 2-D kernel [T, T] * scale."""
    if f is None:
        return torch.full([1, 1], float(scale))
    if f.ndim == 1:
        return torch.outer(f, f) * scale
    return f * scale


def _up_plan(taps: int, up: int, pad0: int, pad1: int) -> tuple[int, int, int, int]:
    """How one axis of (zero-stuff, pad, filter) maps onto a strided transposed convolution.

    A transposed convolution with stride `up` and kernel length T gives the full convolution
    z of the zero-stuffed signal, and the reference output is z[s : len(z) - e] with
    s = T - 1 - pad0 and e = T - up - pad1. Zero taps added before/after the kernel make
    s == e so that the transposed convolution's symmetric padding does the crop; when that
    crop is negative, `extra` zero samples are padded onto the input first.
    Returns (zeros_before, zeros_after, padding, extra).
    """
    s = taps - 1 - pad0
    e = taps - up - pad1
    before, after = max(e - s, 0), max(s - e, 0)
    crop = max(s, e)
    extra = 0
    if crop < 0:
        extra = -(crop // up)  # ceil(-crop / up)
        crop += extra * up
    return before, after, crop, extra


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, upsample (FIR), leaky ReLU * gain, clamp, downsample (FIR): x [N, C, H, W].

    fu / fd: None, separable 1-D [T] or 2-D [T, T] filters with unit DC gain (fu is scaled by
    up**2 here). padding: (x_before, x_after, y_before, y_after) applied after zero-stuffing,
    negative values crop. Same result as NVlabs filtered_lrelu, computed polyphase.
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects x [N, C, H, W], got shape {tuple(x.shape)}")
    c = x.shape[1]
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    pad_x0, pad_x1, pad_y0, pad_y1 = (int(p) for p in padding)
    gain_up = float(gain) if slope != 1 else 1.0  # fold the lrelu gain into the up filter
    if fu is None and up == 1:
        x = F.pad(x, [pad_x0, pad_x1, pad_y0, pad_y1]) * gain_up
    else:
        ku = _kernel_2d(fu, up * up * gain_up).to(device=x.device, dtype=x.dtype)  # [Ty, Tx]
        ty, tx = ku.shape
        by, ay, crop_y, extra_y = _up_plan(ty, up, pad_y0, pad_y1)
        bx, ax, crop_x, extra_x = _up_plan(tx, up, pad_x0, pad_x1)
        ku = F.pad(ku, [bx, ax, by, ay])  # [Ty', Tx'] with zero taps equalising the crops
        if extra_x or extra_y:
            x = F.pad(x, [extra_x, extra_x, extra_y, extra_y])
        weight = ku.expand(c, 1, *ku.shape).contiguous()  # [C, 1, Ty', Tx'] depthwise
        x = F.conv_transpose2d(x, weight, stride=up, padding=(crop_y, crop_x), groups=c)
    inplace = not (torch.is_grad_enabled() and x.requires_grad)  # x is our own temporary here
    if slope != 1:
        x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
    elif gain_up != gain:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    if fd is None and down == 1:
        return x
    kd = _kernel_2d(fd, 1.0).flip([0, 1]).to(device=x.device, dtype=x.dtype)  # [T, T]
    weight = kd.expand(c, 1, *kd.shape).contiguous()  # [C, 1, T, T] depthwise
    return F.conv2d(x, weight, stride=down, groups=c)


def filtered_lrelu_reference(x, fu, fd, b=None, up=1, down=1, padding=(0, 0, 0, 0), gain=math.sqrt(2), slope=0.2, clamp=None):
    """Slow, literal version (zero-stuff, pad, filter, lrelu, filter, subsample) for tests."""
    n, c, h, w = x.shape
    if b is not None:
        x = x + b.reshape(1, -1, 1, 1)
    if up > 1:
        z = x.new_zeros([n, c, h * up, w * up])  # [N, C, H*up, W*up]
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [int(p) for p in padding])
    ku = _kernel_2d(fu, up * up).flip([0, 1])
    x = F.conv2d(x, ku.expand(c, 1, *ku.shape), groups=c)
    x = F.leaky_relu(x, slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    kd = _kernel_2d(fd, 1.0).flip([0, 1])
    x = F.conv2d(x, kd.expand(c, 1, *kd.shape), groups=c)
    return x[:, :, ::down, ::down]


# --------------------------------------------------------------------------------------------
# Fourier features


def fourier_features(
    freqs: torch.Tensor,
    phases: torch.Tensor,
    transforms: torch.Tensor,
    size: tuple[int, int],
    sampling_rate: float,
    bandwidth: float,
) -> torch.Tensor:
    """Band-limited sinusoids sampled on the input grid, as [N, H, W, C].

    freqs [C, 2] (cycles per unit), phases [C] (cycles), transforms [N, 3, 3]: a 2-D affine
    map applied to the coordinates (rotation/translation of the image plane). Frequencies
    that the map pushes towards Nyquist fade out linearly (amplitude 1 at `bandwidth`, 0 at
    sampling_rate / 2) so the input stays alias-free under rotation.
    size: (width, height) in samples; sample centres sit at (i + 0.5 - size/2) / sampling_rate.
    """
    phases = phases.unsqueeze(0) + (freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
    freqs = freqs.unsqueeze(0) @ transforms[:, :2, :2]  # [N, C, 2]
    amplitudes = (1 - (freqs.norm(dim=2) - bandwidth) / (sampling_rate / 2 - bandwidth)).clamp(0, 1)  # [N, C]
    width, height = size
    dev, dt = freqs.device, freqs.dtype
    gx = (torch.arange(width, device=dev, dtype=dt) + (0.5 - width / 2)) / sampling_rate  # [W]
    gy = (torch.arange(height, device=dev, dtype=dt) + (0.5 - height / 2)) / sampling_rate  # [H]
    fx = freqs[:, :, 0].unsqueeze(1).unsqueeze(1)  # [N, 1, 1, C]
    fy = freqs[:, :, 1].unsqueeze(1).unsqueeze(1)  # [N, 1, 1, C]
    x = gx.reshape(1, 1, -1, 1) * fx + gy.reshape(1, -1, 1, 1) * fy  # [N, H, W, C]
    x = x + phases.unsqueeze(1).unsqueeze(2)
    x = torch.sin(x * (2 * math.pi))
    return x * amplitudes.unsqueeze(1).unsqueeze(2)  # [N, H, W, C]
