"""A rendered frame: what the instrument hands to outputs and scripts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(eq=False)
class Frame:
    """One picture: `pixels` is uint8 RGB [H, W, 3] on the render device (no host copy is
    made until someone asks for `image`); `timestamp` is the instrument's time in seconds
    (what sinks get from the live engine: the show clock's time the frame was made for, on the
    clock audio input and controls are stamped with; from `render`: frame number / fps);
    `index` counts rendered frames (a frame reused because nothing moved keeps its index)."""

    pixels: torch.Tensor
    timestamp: float
    index: int
    _host: list = field(default_factory=lambda: [None], repr=False)  # [the host copy, once made]

    @property
    def image(self) -> np.ndarray:
        """The picture as a numpy uint8 array [H, W, 3] (copied from the device once)."""
        host = self._host[0]
        if host is None:
            host = self._host[0] = self.pixels.cpu().numpy()
        return host

    def again(self, timestamp: float, index: int | None = None) -> Frame:
        """The same picture at another time: shares the pixels and their host copy, so a
        picture shown for many frames (nothing moved, blackout) is copied from the device once."""
        return Frame(self.pixels, timestamp, self.index if index is None else index, self._host)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])
