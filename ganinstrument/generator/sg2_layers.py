"""StyleGAN2 building blocks: mapping network and synthesis layers (NVlabs names and maths).

Used by `stylegan2.py`; see that module for the architecture. Parameter and buffer names and
their registration order follow NVlabs so that `state_dict()` matches their checkpoints.
"""

from __future__ import annotations

import math

import torch

from . import ops
from .ops import FullyConnectedLayer, modulated_conv2d, normalize_2nd_moment

# ----------------------------------------------------------------------------------------------
# Mapping network


class MappingNetwork(torch.nn.Module):
    """z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim], with truncation toward w_avg."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = self._embed_inputs(z, c)  # [N, z_dim + embed_features]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, features]
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def _embed_inputs(self, z, c):
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"this network is conditional: c must have shape [N, {self.c_dim}] "
                                 f"(e.g. one-hot labels), got {None if c is None else tuple(c.shape)}")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        elif c is not None and c.numel() != 0:
            raise ValueError(f"this network is unconditional: pass c=None or an [N, 0] tensor, got {tuple(c.shape)}")
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def extra_repr(self):
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"num_layers={self.num_layers}")


# ----------------------------------------------------------------------------------------------
# Synthesis layers


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2), noise, bias, activation, clamp."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                 activation="lrelu", resample_filter=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        ops.check_activation(activation)
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = ops.ACTIVATIONS[activation][0]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="const", fused_modconv=True, gain=1):
        styles = self.affine(w)  # [N, I]
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength  # [N, 1, H, W]
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # [H, W]
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        x = modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, fused_modconv=fused_modconv,
                             gain=act_gain, bias=self.bias * act_gain, noise=noise)
        return ops.act_clamp_(x, self.activation, 1.0, act_clamp)  # gain already folded in

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}, "
                f"conv_clamp={self.conv_clamp}")


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias and clamp."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain  # [N, I]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, padding=self.weight.shape[-1] // 2,
                             fused_modconv=fused_modconv, bias=self.bias)
        return ops.act_clamp_(x, "linear", 1.0, self.conv_clamp)

    def extra_repr(self):
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class Conv2dLayer(torch.nn.Module):
    """Plain equalised-lr conv (used as the 1x1 upsampling skip of the 'resnet' architecture)."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", up=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        ops.check_activation(activation)
        self.in_channels, self.out_channels, self.up = in_channels, out_channels, up
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = ops.ACTIVATIONS[activation][0]
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1):
        act_gain = self.act_gain * gain
        w = (self.weight * (self.weight_gain * act_gain)).to(x.dtype)  # [O, I, k, k]
        b = None if self.bias is None else self.bias * act_gain
        if self.up == 1:
            x = torch.nn.functional.conv2d(x, w, None if b is None else b.to(x.dtype), padding=self.padding)
        elif w.shape[-1] == 1:
            # 1x1: convolve at the low resolution, then upsample (fewer channels to filter or equal).
            x = ops.upsample2d(torch.nn.functional.conv2d(x, w), self.resample_filter, up=self.up)
            if b is not None:
                x = x.add_(b.to(x.dtype)[None, :, None, None])
        else:
            x = ops.conv_transpose_fir(x, w, self.resample_filter, up=self.up, padding=self.padding, bias=b)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.act_clamp_(x, self.activation, 1.0, act_clamp)

    def extra_repr(self):
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, up={self.up}, "
                f"activation={self.activation}")
