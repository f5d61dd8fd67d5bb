"""RGB -> YUV 4:2:0 (I420) on the frame's own device, for the recorder.

A recorder needs yuv420p. Converting on the host means downloading RGB (3 bytes a pixel) and
converting on the recorder's thread: at 1920x1080 PyAV's RGB frame import and swscale's BT.709
conversion cost 7.6 ms a frame on one core here (x4 at 4K: the recorder falls behind at 60
fps). On the GPU the conversion is a few small kernels, and only 1.5 bytes a pixel come down.

The matrix is BT.709, limited ("TV") range, as the stream is tagged (recorder.py):
    Y  = 16  + 219/255 * (Kr R + Kg G + Kb B)
    Cb = 128 + 224/255 * (B - Y') / (2 (1 - Kb))
    Cr = 128 + 224/255 * (R - Y') / (2 (1 - Kr))      Y' = Kr R + Kg G + Kb B
with Kr = 0.2126, Kb = 0.0722. Chroma is the mean of each 2x2 block (centre-sited), which is
what swscale does for the host path (measured: a [1/4, 1/2, 1/4] "left" siting differs from it
by 2 levels on average on smooth pictures, the box by 0.2), so a take looks the same whichever
path made it.
"""

from __future__ import annotations

import numpy as np
import torch

from .readback import wait_for_producer

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def rgb_to_i420(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [H, W, 3] (H, W even) -> uint8 [H * 3/2, W]: the Y plane, then U, then V
    (each H/2 x W/2, laid out row after row), on the same device."""
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    if height % 2 or width % 2:
        raise ValueError(f"I420 needs an even size, got {width}x{height}")
    rgb = pixels.permute(2, 0, 1).to(torch.float32)  # [3, H, W]
    r, g, b = rgb[0], rgb[1], rgb[2]
    luma = KR * r + KG * g + KB * b  # 0..255
    y = 16.0 + (219.0 / 255.0) * luma
    # chroma of the full-resolution picture, then averaged over 2x2 blocks (it is linear)
    diff = torch.stack([(b - luma) / (2 * (1 - KB)), (r - luma) / (2 * (1 - KR))])  # [2, H, W]
    rows = diff[:, 0::2] + diff[:, 1::2]  # [2, H/2, W]
    uv = 128.0 + (224.0 / 255.0) * 0.25 * (rows[..., 0::2] + rows[..., 1::2])  # [2, H/2, W/2]
    planes = torch.cat([y.reshape(-1), uv.reshape(-1)])
    return planes.round_().clamp_(0, 255).to(torch.uint8).reshape(height * 3 // 2, width)


class I420Download:
    """I420 host copies of frames converted on their device. CUDA: on a private stream (it
    waits for the frame's producer event, not for the engine's next render) into a pinned host
    buffer. CPU tensors: converted in place of the caller (for tests, and symmetry)."""

    def __init__(self, pixels: torch.Tensor):
        self.shape = (int(pixels.shape[0]), int(pixels.shape[1]))
        self.device = pixels.device
        self.stream = None
        if pixels.is_cuda:
            height, width = self.shape
            self.stream = torch.cuda.Stream(pixels.device)
            self.host_t = torch.empty((height * 3 // 2, width), dtype=torch.uint8, pin_memory=True)
            self.host = self.host_t.numpy()
            self.event = torch.cuda.Event(blocking=True)  # waits sleep instead of spinning

    def fits(self, pixels: torch.Tensor) -> bool:
        return (int(pixels.shape[0]), int(pixels.shape[1])) == self.shape and pixels.device == self.device

    def __call__(self, pixels: torch.Tensor, producer_event=None) -> np.ndarray:
        """The I420 planes of `pixels` as a host array [H * 3/2, W]; valid until the next call."""
        if self.stream is None:
            return rgb_to_i420(pixels).numpy()
        stream = self.stream
        with torch.cuda.stream(stream):
            wait_for_producer(stream, pixels, producer_event)
            planes = rgb_to_i420(pixels)
            self.host_t.copy_(planes, non_blocking=True)
            self.event.record(stream)
        pixels.record_stream(stream)  # the allocator must not reuse it before the conversion ran
        self.event.synchronize()
        return self.host

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()
