"""Choosing the torch device and the precision a network runs at.

Never hard-code 'cuda': a performer may have CUDA, Apple MPS, or only a CPU. float16 is used
only on CUDA, and only for the layers the model asks for (`num_fp16_res`); a CPU always runs
float32 (float16 on a CPU is both slow and unsupported for many ops).
"""

from __future__ import annotations

import os

from ..common.errors import DeviceError


def pick_device(preferred=None):
    """The torch.device to run on.

    `preferred` may be a torch.device, a string ("cpu", "cuda", "cuda:1", "mps") or None for
    automatic choice: CUDA if available, then MPS, then CPU. The environment variable
    GANINSTRUMENT_DEVICE overrides the automatic choice.
    """
    import torch

    if preferred is None:
        preferred = os.environ.get("GANINSTRUMENT_DEVICE") or None
    if preferred is not None:
        try:
            device = torch.device(preferred)
        except (RuntimeError, TypeError) as exc:
            raise DeviceError(f"unknown device {preferred!r}: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"device {preferred!r} asked for, but CUDA is not available; use --device cpu")
        if device.type == "mps" and not _mps_available():
            raise DeviceError(f"device {preferred!r} asked for, but Apple MPS is not available; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def half_allowed(device) -> bool:
    """Whether float16 compute is worthwhile on this device (CUDA only). The generators ask it,
    per block, for the layers a model runs in float16 (`num_fp16_res`)."""
    return getattr(device, "type", str(device)) == "cuda"


def upload(array, device, dtype=None):
    """A host (numpy) array as a tensor on `device`, without making the host wait for the GPU.

    Every value the frame path sends to the device goes through here. A plain `.to("cuda")` or
    `torch.tensor(..., device="cuda")` from pageable memory copies synchronously: the engine
    would stop until the GPU has finished everything queued (the frame before), once per moved
    control. From pinned memory (PyTorch's caching host allocator keeps the block alive until the
    copy has run) the copy is queued like a kernel.
    """
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(array))
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if torch.device(device).type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
