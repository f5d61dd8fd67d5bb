"""Low-level operations shared by our StyleGAN generators, in plain PyTorch.

Written from the maths of the StyleGAN2 paper, with NVlabs' numerical conventions (the
equalised learning rate gains, the [1, 3, 3, 1] FIR with its padding, the activation clamp) so
that NVlabs weights reproduce NVlabs outputs. Everything is device-agnostic and works in
float32 or float16; nothing here allocates on a fixed device.

Speed notes (these ops run every frame):
- a FIR filter is one depthwise conv2d; upsampling by 2 is one depthwise *transposed* conv
  (stride 2), which equals zero-stuffing + padding + filtering without the zero-stuffed copy;
- gains that commute with the activation (lrelu(g*x) = g*lrelu(x) for g > 0) are folded into
  weights and biases, so a layer is one conv plus a few in-place passes.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import torch
import torch.nn.functional as F

# Activations NVlabs uses in StyleGAN2/3 generators: name -> (default gain, negative slope).
ACTIVATIONS = {
    "linear": (1.0, None),
    "relu": (math.sqrt(2), 0.0),
    "lrelu": (math.sqrt(2), 0.2),
}


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")


# ----------------------------------------------------------------------------------------------
# FIR filters and resampling


def setup_filter(f=(1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """A 2-D float32 FIR filter [fh, fw] from a 1-D list (outer product) or a 2-D list.

    Normalised to sum 1 when `normalize` (the NVlabs `resample_filter` buffer convention).
    """
    f = torch.as_tensor(np.asarray(f, dtype=np.float32))
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = f[:, None] * f[None, :]  # [fh, fw]
    if f.ndim != 2 or f.numel() == 0:
        raise ValueError(f"a FIR filter must be a non-empty 1-D or 2-D list, got shape {tuple(f.shape)}")
    if normalize:
        f = f / f.sum()
    return f.contiguous()


def _depthwise(f: torch.Tensor, channels: int, x: torch.Tensor, gain: float) -> torch.Tensor:
    f = (f * gain).to(device=x.device, dtype=x.dtype)
    return f[None, None].expand(channels, 1, *f.shape)  # [C, 1, fh, fw]


def filter2d(x: torch.Tensor, f: torch.Tensor, padding=(0, 0, 0, 0), gain: float = 1.0,
             bias: torch.Tensor | None = None) -> torch.Tensor:
    """Convolve every channel of x [N, C, H, W] with the 2-D filter f (true convolution).

    `padding` is (left, right, top, bottom) zero padding (negative values crop), as in NVlabs'
    upfirdn2d with up = down = 1. An optional per-channel `bias` [C] is added after filtering.
    """
    px0, px1, py0, py1 = padding
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        pad = (py0, px0)
    else:
        x = F.pad(x, [px0, px1, py0, py1])
        pad = (0, 0)
    w = _depthwise(f.flip([0, 1]), x.shape[1], x, gain)  # flipped: conv2d correlates
    if bias is not None:
        bias = bias.to(x.dtype)
    return F.conv2d(x, w, bias, padding=pad, groups=x.shape[1])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample x [N, C, H, W] by `up` with the FIR filter f (NVlabs `upsample2d` semantics).

    Equal to zero-stuffing, padding by ((fw + up - 1) // 2, (fw - up) // 2) and filtering with
    gain up**2, computed as one depthwise transposed conv (no zero-stuffed copy).
    """
    fh, fw = f.shape
    # Transposed conv places f at every input sample: out[o] = sum_i x[i] f[o + p - up*i], which
    # matches the padded filtering above with p = fw - 1 - (fw + up - 1) // 2 (same for height).
    px = fw - 1 - (fw + up - 1) // 2
    py = fh - 1 - (fh + up - 1) // 2
    w = _depthwise(f, x.shape[1], x, float(up * up))  # [C, 1, fh, fw]
    out = F.conv_transpose2d(x, w, stride=up, padding=(py, px), groups=x.shape[1])
    # conv_transpose2d gives up*H + (f - up - 2p) rows; trim any excess on the far side.
    return out[:, :, : x.shape[2] * up, : x.shape[3] * up]


# ----------------------------------------------------------------------------------------------
# Bias, activation, gain and clamp


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """NVlabs `bias_act` semantics: clamp(act(x + b) * gain, -clamp, clamp).

    `gain` defaults to the activation's own gain (sqrt(2) for (l)relu). Returns a new tensor.
    """
    check_activation(act)
    default_gain, slope = ACTIVATIONS[act]
    gain = default_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    else:
        x = x.clone()
    return act_clamp_(x, act, gain, clamp) if gain > 0 else _slow_act(x, slope, gain, clamp)


def _slow_act(x, slope, gain, clamp):
    if slope is not None:
        x = F.leaky_relu(x, slope) if slope > 0 else F.relu(x)
    x = x * gain
    return x.clamp(-clamp, clamp) if clamp is not None else x


def act_clamp_(x: torch.Tensor, act: str, gain: float, clamp: float | None) -> torch.Tensor:
    """In place: x <- clamp(act(x) * gain, -clamp, clamp), for gain > 0.

    Uses act(g*x) = g*act(x) for the positively homogeneous activations, and clamps *before* the
    (monotonic) activation: clamp(lrelu(y), -c, c) = lrelu(clamp(y, -c/slope, c)).
    """
    slope = ACTIVATIONS[act][1]
    if torch.is_grad_enabled() and x.requires_grad:
        return _slow_act(x, slope, gain, clamp)  # autograd: no in-place
    if gain != 1:
        x.mul_(gain)
    if clamp is not None:
        low = -clamp if slope is None else (-clamp / slope if slope > 0 else None)
        x.clamp_(low, clamp)
    if slope is not None:
        if slope > 0:
            F.leaky_relu_(x, slope)
        else:
            F.relu_(x)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ----------------------------------------------------------------------------------------------
# Equalised-learning-rate fully connected layer


class FullyConnectedLayer(torch.nn.Module):
    """y = act(x @ (W * lr/sqrt(in)).T + b * lr), with NVlabs' storage convention for W and b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        check_activation(activation)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain  # [out, in]
        b = None
        if self.bias is not None:
            b = self.bias.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t()) if b is not None else x.matmul(w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


# ----------------------------------------------------------------------------------------------
# Modulated convolution

# At batch > 1 the fused form is a grouped conv (one group per sample). On a CPU that measured
# slower (paper256, batch 4: 286 vs 185 ms/frame of CPU time) than modulating the activations
# instead, which is the same maths up to rounding, so CPUs use the latter unless this is True.
GROUPED_CONV_ON_CPU = False


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     fused_modconv: bool = True, gain: float = 1.0, bias: torch.Tensor | None = None,
                     noise: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution, optionally upsampling by 2.

    Returns gain * (modconv(x) + noise) + bias, i.e. everything the layer needs before its
    activation, with the gain folded into the weights (the layer's act gain commutes with lrelu).
    x [N, I, H, W]; weight [O, I, k, k]; styles [N, I]; noise broadcastable to [N, O, H', W'].
    `up` = 2 means transposed conv (stride 2, weight used as a true convolution, as NVlabs)
    followed by the FIR `resample_filter` with gain 4.
    """
    n, cin, h, w_ = x.shape
    cout, _, kh, kw = weight.shape
    dtype = x.dtype
    styles = styles.float()
    if dtype == torch.float16 and demodulate:
        # Keep the float16 input/activation products in range (cancels under demodulation).
        styles = styles / styles.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
    weight = weight.float()
    if demodulate:
        # |W * s|^2 summed over (I, k, k) without building the modulated weight: one pass over W.
        wsq = torch.linalg.vector_norm(weight, dim=(2, 3)).square()  # [O, I]
        scale = (styles.square() @ wsq.t() + 1e-8).rsqrt() * gain  # [N, O]
    else:
        scale = torch.full([n, cout], float(gain), device=x.device)
    noise_scaled = None if noise is None else (noise.to(dtype) * gain if gain != 1 else noise.to(dtype))

    if fused_modconv and n > 1 and x.device.type == "cpu" and not GROUPED_CONV_ON_CPU:
        fused_modconv = False  # same maths; oneDNN grouped convs measured ~1.5x slower than this
    if fused_modconv:
        coef = scale[:, :, None] * styles[:, None, :]  # [N, O, I]
        if n == 1:
            # Written straight into the memory format the conv wants (avoids a weight copy).
            fmt = torch.channels_last if up == 1 and x.is_contiguous(memory_format=torch.channels_last) \
                else torch.contiguous_format
            if torch.is_grad_enabled() and (weight.requires_grad or coef.requires_grad):
                wmod = (weight * coef[0, :, :, None, None]).contiguous(memory_format=fmt)  # out= has no grad
            else:
                wmod = torch.empty_like(weight, memory_format=fmt)
                torch.mul(weight, coef[0, :, :, None, None], out=wmod)  # [O, I, k, k]
            y = _conv(x, wmod.to(dtype), up, padding, resample_filter, groups=1, bias=bias)
        else:
            wmod = (weight[None] * coef[:, :, :, None, None]).to(dtype)  # [N, O, I, k, k]
            xg = x.reshape(1, n * cin, h, w_)  # [1, N*I, H, W]
            wg = wmod.reshape(n * cout, cin, kh, kw)  # [N*O, I, k, k]
            bg = None if bias is None else bias.repeat(n)
            y = _conv(xg, wg, up, padding, resample_filter, groups=n, bias=bg)
            y = y.reshape(n, cout, y.shape[2], y.shape[3])  # [N, O, H', W']
        if noise_scaled is not None:
            y = y.add_(noise_scaled)
        return y

    # Not fused: modulate the activations, convolve with the shared weight, demodulate after.
    if dtype == torch.float16 and demodulate:
        # A raw weight sums I*k*k products (4608 at 512 channels): float16 overflows before the
        # demodulation scale brings it back. Shrink each output channel's weight to at most
        # 1/sqrt(I*k*k) and grow its scale by as much (NVlabs does the same): the same result.
        shrink = (weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) * math.sqrt(cin * kh * kw)).reciprocal()  # [O]
        weight = weight * shrink[:, None, None, None]
        scale = scale / shrink[None, :]
    xs = x * styles.to(dtype)[:, :, None, None]  # [N, I, H, W]
    y = _conv(xs, weight.to(dtype), up, padding, resample_filter, groups=1, bias=None)
    y = y.mul_(scale.to(dtype)[:, :, None, None])
    if noise_scaled is not None:
        y = y.add_(noise_scaled)
    if bias is not None:
        y = y.add_(bias.to(dtype)[None, :, None, None])
    return y


def _conv(x, w, up, padding, f, groups, bias):
    """conv2d (up=1, correlation) or transposed conv + FIR (up=2, true convolution), plus bias."""
    if bias is not None:
        bias = bias.to(x.dtype)
    if up == 1:
        return F.conv2d(x, w, bias, padding=padding, groups=groups)
    return conv_transpose_fir(x, w, f, up=up, padding=padding, groups=groups, bias=bias)


def conv_transpose_fir(x, w, f, up=2, padding=1, groups=1, bias=None):
    """NVlabs `conv2d_resample` upsampling path: upsample (FIR, gain up^2), then convolve with w.

    Computed as a transposed conv with stride `up` followed by a depthwise FIR filter (cheaper
    than filtering the zero-stuffed input). w is [O*?, I, k, k] as for conv2d with `groups`.
    """
    gout, cin, kh, kw = w.shape
    if groups == 1:
        wt = w.transpose(0, 1)  # [I, O, k, k]
    else:
        wt = w.reshape(groups, gout // groups, cin, kh, kw).transpose(1, 2)  # [G, I, O/G, k, k]
        wt = wt.reshape(groups * cin, gout // groups, kh, kw)  # [G*I, O/G, k, k]
    fh, fw = f.shape
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    y = F.conv_transpose2d(x, wt, stride=up, groups=groups)
    return filter2d(y, f, padding=(px0, px1, py0, py1), gain=float(up * up), bias=bias)


# ----------------------------------------------------------------------------------------------
# Process-level tuning


def tune_cpu_allocator(threshold_bytes: int = 1 << 31) -> bool:
    """Keep freed large blocks in the process heap (glibc only). Returns whether it applied.

    On CPU a generator allocates tens of fresh megabytes per layer; by default glibc returns each
    block to the OS and the next frame pays a page fault per 4 KiB again, which at 1024 px costs
    more than the convolutions. This raises glibc's mmap and trim thresholds so the memory is
    reused. It is process-wide, so it is opt-in: the engine or a benchmark calls it, never an
    import.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, int(threshold_bytes)) and mallopt(m_trim_threshold, int(threshold_bytes)))
