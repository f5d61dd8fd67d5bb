"""The `frames:` output (and `render --out DIR/`): every frame a PNG file in a folder."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..common.files import write_whole
from .base import SinkError, ThreadedSink
from .mux import import_av


class FrameDirSink(ThreadedSink):
    """Writes each frame as a PNG file (`frame_000000.png`, ...) into a folder.

    Numbered by arrival, not by `frame.index`, so an unchanged picture still takes its slot.
    Each file appears whole (written beside, then renamed).
    """

    def __init__(self, directory: str | os.PathLike, *, prefix: str = "frame_",
                 queue_size: int = 32, on_full: str = "drop", name: str = "frames"):
        super().__init__(name, queue_size=queue_size, on_full=on_full, drain_on_close=True)
        self.directory = Path(directory)
        self.prefix = prefix
        self._count = 0  # sink thread

    def _start(self) -> None:
        import_av()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"frames: cannot create {self.directory}: {err}") from err

    def _write(self, frame) -> None:
        path = self.directory / f"{self.prefix}{self._count:06d}.png"
        with write_whole(path, ".png.part") as tmp:  # (a full disk leaves no partial file; the error says which)
            Path(tmp).write_bytes(encode_png(frame.image))
        self._count += 1


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB image [H, W, 3] (PyAV's encoder: no extra dependency)."""
    import av

    height, width = img.shape[:2]
    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "rgb24"
    cc.time_base = Fraction(1, 30)
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return b"".join(bytes(p) for p in cc.encode(vf)) + b"".join(bytes(p) for p in cc.encode(None))
