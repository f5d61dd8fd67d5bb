"""A rendered frame: what the instrument hands to outputs and scripts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(eq=False)
class Frame:
    """One picture: `pixels` is uint8 RGB [H, W, 3] on the render device (no host copy is
    made until someone asks for `image`); `timestamp` is the instrument's time in seconds;
    `index` counts rendered frames (a frame reused because nothing moved keeps its index)."""

    pixels: torch.Tensor
    timestamp: float
    index: int
    _host: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        """The picture as a numpy uint8 array [H, W, 3] (copied from the device once)."""
        if self._host is None:
            self._host = self.pixels.cpu().numpy()
        return self._host

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])
