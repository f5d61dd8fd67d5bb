"""Turning generator outputs and intermediate activations into viewable images.

A layer tap (`G.synthesis(ws, until="L6_148_362")`) returns raw activations
[N, C, H, W] with any channel count and any range. Performers view them as pictures (the
TouchDesigner habit of watching layer L6 or L14), so they need a colour mapping that is
stable from frame to frame: a fixed, seeded projection of the channels onto RGB, then a
normalisation by the frame's own spread. Everything stays on the tensor's device; only the
final uint8 image leaves it when the caller asks.
"""

from __future__ import annotations

import torch

from .device import upload

TAP_MODES = ("project", "channels", "energy")


def image_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """A generator image [N, C, H, W] in about [-1, 1] -> uint8 [N, H, W, C] on the same device.

    C is 1 or 3 (grayscale is kept as 1 channel; callers expand if they need RGB).
    """
    if img.ndim != 4:
        raise ValueError(f"expected an image batch [N, C, H, W], got shape {tuple(img.shape)}")
    x = img.float().mul(127.5).add_(128.0)  # [N, C, H, W]
    x = x.nan_to_num_(nan=128.0).clamp_(0.0, 255.0)  # a NaN pixel (float16 overflow) is grey, not undefined
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [N, H, W, C]


def _projection(channels: int, seed: int, device, dtype) -> torch.Tensor:
    """A fixed [3, channels] matrix with orthonormal rows (channels >= 3) from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    mat = torch.randn(channels, 3, generator=gen, dtype=torch.float64)  # [C, 3]
    q, _ = torch.linalg.qr(mat)  # [C, min(C,3)] orthonormal columns
    if q.shape[1] < 3:
        q = torch.cat([q, q[:, :1].expand(-1, 3 - q.shape[1])], dim=1)
    return upload(q.T.numpy(), device, dtype)  # [3, C] (once per layer, channel count and device)


_PROJ_CACHE: dict[tuple, torch.Tensor] = {}


def activation_to_rgb(
    x: torch.Tensor,
    *,
    mode: str = "project",
    channels: tuple[int, int, int] | None = None,
    seed: int = 0,
    contrast: float = 2.0,
) -> torch.Tensor:
    """Activations [N, C, H, W] -> a float RGB image [N, 3, H, W] in [-1, 1].

    Modes:
      - "project": a fixed seeded projection of all channels onto 3 (stable across frames,
        so watching a layer while playing does not flicker between colourings);
      - "channels": three chosen channel indices (`channels=(i, j, k)`) shown as R, G, B;
      - "energy": the per-pixel RMS over channels, as grayscale.
    Each output channel is centred and scaled by its own standard deviation; `contrast` is how many
    standard deviations reach full scale.
    """
    if x.ndim != 4:
        raise ValueError(f"expected activations [N, C, H, W], got shape {tuple(x.shape)}")
    if contrast <= 0:
        raise ValueError(f"contrast must be > 0, got {contrast}")
    x = x.float()
    n, c, h, w = x.shape
    if mode == "project":
        key = (c, seed, x.device, x.dtype)
        proj = _PROJ_CACHE.get(key)
        if proj is None:
            proj = _PROJ_CACHE[key] = _projection(c, seed, x.device, x.dtype)
        rgb = torch.einsum("kc,nchw->nkhw", proj, x)  # [N, 3, H, W]
    elif mode == "channels":
        if channels is None or len(channels) != 3:
            raise ValueError("mode 'channels' needs channels=(r, g, b), three channel indices")
        bad = [i for i in channels if not 0 <= int(i) < c]
        if bad:
            raise ValueError(f"channel indices {bad} out of range 0..{c - 1}")
        rgb = x[:, list(channels)]  # [N, 3, H, W]
    elif mode == "energy":
        rgb = x.square().mean(dim=1, keepdim=True).sqrt().expand(n, 3, h, w)  # [N, 3, H, W]
    else:
        raise ValueError(f"unknown tap mode {mode!r}; expected one of {', '.join(TAP_MODES)}")
    # Each colour channel is centred and scaled on its own: a false-colour view wants full
    # contrast in every channel, and the result is then independent of gain and offset.
    mean = rgb.mean(dim=(2, 3), keepdim=True)
    std = rgb.std(dim=(2, 3), keepdim=True).clamp_min(1e-8)
    return ((rgb - mean) / (contrast * std)).clamp(-1.0, 1.0)


def tap_to_uint8(x: torch.Tensor, **kwargs) -> torch.Tensor:
    """Activations or an image [N, C, H, W] -> uint8 RGB [N, H, W, 3] (on the same device)."""
    if x.shape[1] == 3 and not kwargs:
        return image_to_uint8(x)
    return image_to_uint8(activation_to_rgb(x, **kwargs))
