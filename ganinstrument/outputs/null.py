"""A sink that only counts: for benchmarks and headless runs (`--output null`)."""

from __future__ import annotations

from .base import ThreadedSink


class NullSink(ThreadedSink):
    """Takes frames and throws them away on its own thread, counting them in `stats`.

    `copy_to_host=True` also asks each frame for its host image, so a benchmark can see what
    the device-to-host copy costs a sink that needs pixels on the CPU.
    """

    def __init__(self, name: str = "null", *, copy_to_host: bool = False, queue_size: int = 1,
                 on_full: str = "drop"):
        super().__init__(name, queue_size=queue_size, on_full=on_full)
        self.copy_to_host = copy_to_host
        self.last_index: int | None = None  # written on the sink thread

    def _start(self) -> None:
        pass

    def _write(self, frame) -> None:
        if self.copy_to_host:
            frame.image
        self.last_index = frame.index
