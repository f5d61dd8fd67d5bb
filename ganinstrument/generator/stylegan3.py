"""Our own StyleGAN3 generator (configs T and R), with NVlabs parameter names and call API.

Written from the Alias-Free GAN paper (Karras et al. 2021) and the facts recorded in the
conformance fixtures; state_dict keys, shapes and order equal NVlabs `networks_stylegan3`, so
users' weights load strictly and layer edits name what users know (`synthesis.L6_148_362.weight`).

Data flow: z -> mapping (normalise, 2 FC layers, truncation) -> ws [N, num_ws, w_dim];
ws[0] steers the Fourier-feature input (rotation/translation), ws[1 + i] modulates layer i:
modulated conv -> bias -> upsample (FIR) -> leaky ReLU -> clamp -> downsample (FIR); the last
layer is ToRGB (1x1, no demodulation, no filtering). See sg3_ops for the resampling.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch

from . import sg3_ops
from .device import half_allowed

_SYNTHESIS_KEYS = {
    "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband",
    "last_stopband_rel", "margin_size", "output_scale", "num_fp16_res",
}
_LAYER_KEYS = {"conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta"}
_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta"}
NOISE_MODES = ("const", "random", "none")


def _known_kwargs(kwargs: dict, known: set, where: str) -> dict:
    """The kwargs we understand; others (added by forks, none affecting inference) warn."""
    unknown = sorted(set(kwargs) - known)
    if unknown:
        warnings.warn(f"StyleGAN3 {where}: ignoring unsupported arguments {unknown}", stacklevel=3)
    return {k: v for k, v in kwargs.items() if k in known}


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate; activation 'linear' or 'lrelu' (gain sqrt 2)."""

    def __init__(self, in_features, out_features, activation="linear", bias=True, lr_multiplier=1.0, weight_init=1.0, bias_init=0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = torch.nn.Parameter(torch.from_numpy(bias_init / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x @ (self.weight.to(x.dtype) * self.weight_gain).t()  # [N, out]
        if self.bias is not None:
            x = x + self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "lrelu":
            x = torch.nn.functional.leaky_relu(x, 0.2) * math.sqrt(2)
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(torch.nn.Module):
    """z (and optional class label c) -> ws [N, num_ws, w_dim], with truncation towards w_avg."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got shape {tuple(z.shape)}")
        x = _normalize_2nd_moment(z.to(torch.float32))  # [N, z_dim]
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape != (z.shape[0], self.c_dim):
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"c must be [N, {self.c_dim}] (N={z.shape[0]}) for this conditional model, got {got}")
            y = _normalize_2nd_moment(self.embed(c.to(torch.float32)))  # [N, w_dim]
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisInput(torch.nn.Module):
    """Fourier features, rotated/translated by an affine of w and by the user `transform`."""

    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = [int(s) for s in np.broadcast_to(size, [2])]  # (width, height)
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        # Random frequencies inside a disc of radius `bandwidth`, random phases.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # user transform (gen_images.py)
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = self.affine(w)  # [N, 4]: cos, sin, tx, ty (unnormalised)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        n = w.shape[0]
        m_r = torch.eye(3, device=w.device).repeat([n, 1, 1])  # [N, 3, 3] rotation
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=w.device).repeat([n, 1, 1])  # [N, 3, 3] translation
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)  # [N, 3, 3]
        x = sg3_ops.fourier_features(self.freqs, self.phases, transforms, self.size, self.sampling_rate, self.bandwidth)
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # [N, H, W, C]
        return x.permute(0, 3, 1, 2)  # [N, C, H, W], channels-last in memory

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"


class SynthesisLayer(torch.nn.Module):
    """Modulated conv -> bias -> up (FIR) -> lrelu -> clamp -> down (FIR); or ToRGB."""

    def __init__(self, w_dim, is_torgb, is_critically_sampled, use_fp16, in_channels, out_channels, in_size, out_size,
                 in_sampling_rate, out_sampling_rate, in_cutoff, out_cutoff, in_half_width, out_half_width,
                 conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False, conv_clamp=256,
                 magnitude_ema_beta=0.999):
        super().__init__()
        self.w_dim, self.is_torgb, self.is_critically_sampled, self.use_fp16 = w_dim, is_torgb, is_critically_sampled, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size = [int(s) for s in np.broadcast_to(in_size, [2])]
        self.out_size = [int(s) for s in np.broadcast_to(out_size, [2])]
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Resampling: up to the temporary rate, lrelu there, down to the output rate.
        self.up_factor = int(round(self.tmp_sampling_rate / in_sampling_rate))
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", sg3_ops.design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = int(round(self.tmp_sampling_rate / out_sampling_rate))
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", sg3_ops.design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial))

        # Padding (after zero-stuffing) so that the output has exactly out_size samples.
        pad_total = (np.array(self.out_size) - 1) * self.down_factor + 1  # [x, y]
        pad_total -= (np.array(self.in_size) + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(self, x, w, noise_mode="const", force_fp32=False, update_emas=False):
        if update_emas:
            magnitude_cur = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()
        styles = self.affine(w)  # [N, I]
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        use_fp16 = self.use_fp16 and not force_fp32 and half_allowed(x.device)
        dtype = torch.float16 if use_fp16 else torch.float32
        x = self._modulated_conv(x.to(dtype), styles, input_gain)  # bias included
        return sg3_ops.filtered_lrelu(
            x, self.up_filter, self.down_filter, up=self.up_factor, down=self.down_factor, padding=self.padding,
            gain=1 if self.is_torgb else math.sqrt(2), slope=1 if self.is_torgb else 0.2, clamp=self.conv_clamp)

    def _modulated_conv(self, x, styles, input_gain):
        """Conv with per-sample modulated (and, except ToRGB, demodulated) weights, plus bias.

        Every factor is a per-(out, in) or per-out scale of the shared weight, so they are
        combined from the [O, I] matrix of squared filter norms without touching the full
        weight more than twice per frame. Batch 1: the scales are folded into the weight (one
        plain conv). Batch N: the equivalent "scale inputs, shared conv, scale outputs".
        """
        w = self.weight  # [O, I, k, k]
        n, pad = x.shape[0], self.conv_kernel - 1
        dcoefs = None  # [N, O] output scales
        if not self.is_torgb:
            q = torch.linalg.vector_norm(w, dim=(2, 3)).square()  # [O, I] squared filter norms
            # Pre-normalise weight rows and styles (keeps float16 in range); demodulate after.
            wscale = (q.sum(dim=1) / (q.shape[1] * self.conv_kernel ** 2)).rsqrt()  # [O]
            styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()  # [N, I]
            dcoefs = ((styles.square() @ q.t()) * wscale.square() + 1e-8).rsqrt() * wscale  # [N, O]
        styles = styles * input_gain  # [N, I]
        bias = self.bias.to(x.dtype)
        if n == 1:
            scale = styles if dcoefs is None else dcoefs.reshape(-1, 1) * styles  # [O, I] or [1, I]
            wm = w * scale.reshape(*scale.shape, 1, 1)  # [O, I, k, k]
            return torch.nn.functional.conv2d(x, wm.to(x.dtype), bias, padding=pad)
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)  # [N, I, H, W]
        if dcoefs is None:
            x = torch.nn.functional.conv2d(x, w.to(x.dtype), padding=pad)  # [N, O, H', W']
            return x + bias.reshape(1, -1, 1, 1)
        w = w * wscale.reshape(-1, 1, 1, 1)  # unit-RMS filters keep the float16 conv in range
        dcoefs = dcoefs / wscale  # [N, O]
        x = torch.nn.functional.conv2d(x, w.to(x.dtype), padding=pad)  # [N, O, H', W']
        return torch.addcmul(bias.reshape(1, -1, 1, 1), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))

    def geometry(self) -> dict:
        """The layer's derived sizes, rates, cutoffs and filter plan (as in the fixtures)."""
        keys = ["is_torgb", "is_critically_sampled", "use_fp16", "in_channels", "out_channels", "in_size", "out_size",
                "in_sampling_rate", "out_sampling_rate", "tmp_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
                "out_half_width", "conv_kernel", "up_factor", "down_factor", "up_taps", "down_taps", "down_radial",
                "padding", "conv_clamp", "magnitude_ema_beta"]
        return {k: getattr(self, k) for k in keys}

    def extra_repr(self) -> str:
        return "\n".join([
            f"torgb={self.is_torgb}, critically_sampled={self.is_critically_sampled}, use_fp16={self.use_fp16},",
            f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g}, tmp={self.tmp_sampling_rate:g},",
            f"in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g}, in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},",
            f"in_size={self.in_size}, out_size={self.out_size}, in_channels={self.in_channels}, out_channels={self.out_channels},",
            f"up={self.up_factor} ({self.up_taps} taps), down={self.down_factor} ({self.down_taps} taps{', radial' if self.down_radial else ''}), padding={self.padding}"])


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W]; `until` stops at a named tap."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_layers=14,
                 num_critical=2, first_cutoff=2, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10,
                 output_scale=0.25, num_fp16_res=4, **layer_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.num_layers, self.num_critical, self.margin_size = num_layers, num_critical, margin_size
        self.output_scale, self.num_fp16_res = output_scale, num_fp16_res

        # Cutoffs and minimum stopbands rise geometrically up to the critically sampled layers.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents  # [L+1]
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents  # [L+1]
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        cutoffs, half_widths = [float(v) for v in cutoffs], [float(v) for v in half_widths]
        self.input = SynthesisInput(w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=float(sampling_rates[0]), bandwidth=cutoffs[0])
        self._layer_names = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx], **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self._layer_names.append(name)

    def tap_names(self) -> list[str]:
        """Valid `until` names, in order: 'input', then every layer (the last is ToRGB)."""
        return ["input"] + list(self._layer_names)

    def layer_names(self) -> list[str]:
        """The blendable groups, in order (same as tap_names())."""
        return self.tap_names()

    def _resolve_tap(self, until):
        if until is None:
            return None
        name = until[len("synthesis."):] if isinstance(until, str) and until.startswith("synthesis.") else until
        if name not in self.tap_names():
            raise ValueError(f"unknown tap {until!r}; valid names: {', '.join(self.tap_names())}")
        return name

    def forward(self, ws, noise_mode="const", force_fp32=False, until=None, update_emas=False):
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got shape {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        stop = self._resolve_tap(until)
        ws = ws.to(torch.float32).unbind(dim=1)  # num_ws x [N, w_dim]
        x = self.input(ws[0])  # [N, C, H, W]
        if stop == "input":
            return x.to(torch.float32).contiguous()
        for name, w in zip(self._layer_names, ws[1:]):
            x = getattr(self, name)(x, w, force_fp32=force_fp32, update_emas=update_emas)
            if name == stop:  # ToRGB tap: before output_scale, like the NVlabs module output
                return x.to(torch.float32).contiguous()
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()  # [N, img_channels, H, W]

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}, "
                f"margin_size={self.margin_size}, output_scale={self.output_scale:g}, num_fp16_res={self.num_fp16_res}")


class Generator(torch.nn.Module):
    """StyleGAN3 generator: the NVlabs `networks_stylegan3.Generator` constructor and call API."""

    kind = "sg3"

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, **synthesis_kwargs):
        super().__init__()
        self.init_kwargs = copy.deepcopy(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs),
                                              **synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        synthesis_kwargs = _known_kwargs(synthesis_kwargs, _SYNTHESIS_KEYS | _LAYER_KEYS, "synthesis")
        mapping_kwargs = _known_kwargs(dict(mapping_kwargs), _MAPPING_KEYS, "mapping")
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode="const", force_fp32=False,
                until=None, update_emas=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, until=until, update_emas=update_emas)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"img_resolution={self.img_resolution}, img_channels={self.img_channels}")
