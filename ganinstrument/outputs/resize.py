"""Scaling a frame to the output's size (render's --size), on the frame's device."""

from __future__ import annotations

from ..common.frame import Frame


def resize_frame(frame: Frame, size: tuple[int, int] | None) -> Frame:
    """Scale to (width, height): bilinear, antialiased when shrinking; the frame itself when
    it already has that size."""
    import torch  # (the command line reads this room without loading torch)

    if size is None or frame.size == size:
        return frame
    w, h = size
    x = frame.pixels.permute(2, 0, 1)[None].float()  # [1, 3, H, W]
    shrink = w < frame.size[0] or h < frame.size[1]
    y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    pixels = y[0].round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()  # [H, W, 3]
    return Frame(pixels, frame.timestamp, frame.index)
