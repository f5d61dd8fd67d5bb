"""Our own StyleGAN2 generator: NVlabs constructor arguments, parameter names and call API.

Written from the StyleGAN2 paper (Karras et al. 2020): a mapping network (pixel norm, then
equalised-lr fully connected layers) turns z (and an embedded label c) into w; the synthesis
network starts from a learned 4x4 constant and, per resolution, runs modulated/demodulated 3x3
convs with per-pixel noise and a ToRGB layer, upsampling with the [1, 3, 3, 1] FIR filter.
The 'skip', 'resnet' and 'orig' architectures of the paper are supported. `state_dict()` keys,
shapes and order are NVlabs' (stylegan3 `networks_stylegan2` and stylegan2-ada-pytorch), so
their weights load with strict=True and layer names mean what users already know.

Shapes: z [N, z_dim], c [N, c_dim], ws [N, num_ws, w_dim], img [N, img_channels, H, W].
Intermediate activations can be tapped by name (`G.synthesis(ws, until="b64.conv1")`).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from . import ops
from .device import half_allowed
from .sg2_layers import Conv2dLayer, MappingNetwork, SynthesisLayer, ToRGBLayer

NOISE_MODES = ("const", "random", "none")
ARCHITECTURES = ("orig", "skip", "resnet")
SYNTHESIS_DEFAULTS = dict(
    channel_base=32768, channel_max=512, num_fp16_res=4, architecture="skip", resample_filter=[1, 3, 3, 1],
    conv_clamp=None, fp16_channels_last=False, fused_modconv_default=True, kernel_size=3, use_noise=True,
    activation="lrelu",
)
MAPPING_DEFAULTS = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
                        lr_multiplier=0.01, w_avg_beta=0.998)
_ALIASES = {"conv_kernel": "kernel_size"}  # a spelling some forks use


def _check_kwargs(given: dict, defaults: dict, what: str) -> dict:
    given = {_ALIASES.get(k, k): v for k, v in given.items()}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"unsupported StyleGAN2 {what} argument(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(sorted(defaults))}")
    return {**defaults, **given}


class SynthesisBlock(torch.nn.Module):
    """One resolution: [upsampling conv0], conv1, [ToRGB], [resnet skip]; carries x and img."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture="skip",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                 fused_modconv_default=True, **layer_kwargs):
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.img_channels, self.is_last = resolution, img_channels, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.fp16_channels_last = fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, resample_filter=resample_filter,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def tap_suffixes(self) -> list[str]:
        """Tap names inside this block, in the order they are computed ('' is the block's x)."""
        names = []
        if hasattr(self, "skip"):
            names.append("skip")
        if self.in_channels != 0:
            names.append("conv0")
        names.append("conv1")
        if self.num_torgb:
            names += ["torgb", "img"]
        elif self.architecture == "skip" or self.is_last:
            names.append("img")
        return names + [""]

    def forward(self, x, img, ws, noise_mode="const", force_fp32=False, fused_modconv=None, until=None):
        """x [N, in, R/2, R/2] or None, img [N, C, R/2, R/2] or None, ws [N, num_conv + num_torgb, w_dim].

        Returns (x, img, tap): tap is the activation named by `until` (a suffix) or None.
        """
        w_iter = iter(ws.unbind(dim=1))
        half = _half_on(ws.device, self.use_fp16, force_fp32)
        dtype = torch.float16 if half else torch.float32
        memory_format = _memory_format(ws.device, half)
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training
        layer_kwargs = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])  # [N, C, 4, 4]
            x = x.contiguous(memory_format=memory_format)
            x = self.conv1(x, next(w_iter), **layer_kwargs)
            if until == "conv1":
                return x, img, x
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
            y = None
            if self.architecture == "resnet":
                y = self.skip(x, gain=np.sqrt(0.5))
                if until == "skip":
                    return x, img, y
            x = self.conv0(x, next(w_iter), **layer_kwargs)
            if until == "conv0":
                return x, img, x
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5) if y is not None else 1, **layer_kwargs)
            if until == "conv1":
                return x, img, x
            if y is not None:
                x = y.add_(x)

        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)  # [N, C, R, R]
        if self.num_torgb:
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)  # [N, C, R, R]
            if until == "torgb":
                return x, img, y
            img = img.add_(y) if img is not None else y
        if until == "img":
            return x, img, img
        return x, img, (x if until == "" else None)

    def extra_repr(self):
        return (f"resolution={self.resolution}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"architecture={self.architecture}, use_fp16={self.use_fp16}, is_last={self.is_last}")


def _half_on(device, use_fp16, force_fp32):
    """float16 only for the blocks that ask for it, only on CUDA, and never under force_fp32."""
    return bool(use_fp16) and not force_fp32 and half_allowed(device)


def _memory_format(device, half):
    # channels_last: oneDNN convolutions on a CPU are about twice as fast in it, and float16 on
    # CUDA uses tensor cores best in it. float32 on CUDA (and MPS) stays contiguous, as NVlabs.
    return torch.channels_last if (half or device.type == "cpu") else torch.contiguous_format


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R], block by block from 4x4."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=4,
                 **block_kwargs):
        super().__init__()
        log2 = int(np.log2(img_resolution)) if img_resolution >= 4 else 0
        if img_resolution < 4 or img_resolution != 2 ** log2:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        if block_kwargs.get("architecture", "skip") not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                             f"got {block_kwargs['architecture']!r}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=(res == img_resolution), use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_conv
            if block.is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def block_names(self) -> list[str]:
        return [f"b{res}" for res in self.block_resolutions]

    def tap_names(self) -> list[str]:
        """Every valid `until` name, in the order the network computes them."""
        names = []
        for name in self.block_names():
            for suffix in getattr(self, name).tap_suffixes():
                names.append(f"{name}.{suffix}" if suffix else name)
        return names

    def _parse_until(self, until: str) -> tuple[str, str]:
        name = until[len("synthesis."):] if until.startswith("synthesis.") else until
        if name.endswith(".x"):
            name = name[:-2]
        if name not in self.tap_names():
            raise ValueError(f"unknown tap {until!r}; valid taps: {', '.join(self.tap_names())}")
        block, _, suffix = name.partition(".")
        return block, suffix

    def forward(self, ws, noise_mode="const", force_fp32=False, until=None, fused_modconv=None, update_emas=False):
        """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32 (or the `until` activation)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        stop_block, stop_suffix = self._parse_until(until) if until is not None else (None, None)
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for name in self.block_names():
            block = getattr(self, name)
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)  # [N, n, w_dim]
            w_idx += block.num_conv
            suffix = stop_suffix if name == stop_block else None
            x, img, tap = block(x, img, block_ws, noise_mode=noise_mode, force_fp32=force_fp32,
                                fused_modconv=fused_modconv, until=suffix)
            if suffix is not None:
                return tap
        return img

    def extra_repr(self):
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}")


class Generator(torch.nn.Module):
    """StyleGAN2 generator with NVlabs' constructor arguments, state_dict names and call API."""

    kind = "sg2"

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, **synthesis_kwargs):
        super().__init__()
        nested = synthesis_kwargs.pop("synthesis_kwargs", None) or {}  # stylegan2-ada-pytorch spelling
        synthesis_kwargs = {**nested, **synthesis_kwargs}
        try:
            self.init_kwargs = json.loads(json.dumps(dict(
                z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                mapping_kwargs=dict(mapping_kwargs), **synthesis_kwargs)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"StyleGAN2 constructor arguments must be JSON-serialisable: {exc}") from None
        synth = _check_kwargs(synthesis_kwargs, SYNTHESIS_DEFAULTS, "synthesis")
        mapping = _check_kwargs(dict(mapping_kwargs), MAPPING_DEFAULTS, "mapping")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synth)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping)

    def forward(self, z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode="const", force_fp32=False,
                until=None, fused_modconv=None, update_emas=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)  # [N, num_ws, w_dim]
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, until=until,
                              fused_modconv=fused_modconv)

    def extra_repr(self):
        return (f"kind={self.kind}, z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, "
                f"num_ws={self.num_ws}, img_resolution={self.img_resolution}, img_channels={self.img_channels}")
