"""uint8 RGBA host copies of frames for the sinks that send from host memory (Spout's readback,
NDI): a reused buffer for CPU frames; for CUDA frames an RGBA staging tensor on the device and
two pinned host buffers, each with an event, filled on a private stream, so a sink thread waits
only for its own copy, never for the engine's queued work.
"""

from __future__ import annotations

import numpy as np


class RgbaReadback:
    """uint8 RGBA host copies of [H, W, 3] frames.

    CPU frames: one reused host buffer. CUDA frames: an RGBA staging tensor on the device and
    two pinned host buffers, each with an event; copies run on a private stream.
    """

    def __init__(self, pixels):
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        self.shape = (height, width)
        self.device = pixels.device
        self._next = 0
        self.stream = None
        if not pixels.is_cuda:
            self.host = [np.full((height, width, 4), 255, np.uint8)]
            return
        import torch

        self.stream = torch.cuda.Stream(pixels.device)
        # Allocated and filled on the stream that uses it: the fill is ordered before the
        # first copy (the stream waits only for the producer's event, not for the default
        # stream), and the allocator gives us no block the render's queued kernels still use.
        with torch.cuda.stream(self.stream):
            self.staging = torch.full((height, width, 4), 255, dtype=torch.uint8,
                                      device=pixels.device)  # [H, W, 4], alpha stays 255
        self.host_t = [torch.empty((height, width, 4), dtype=torch.uint8, pin_memory=True)
                       for _ in range(2)]
        self.host = [t.numpy() for t in self.host_t]  # views of the pinned memory
        # blocking=True: `wait` sleeps in cudaEventSynchronize instead of spinning a core
        self.events = [torch.cuda.Event(blocking=True) for _ in range(2)]

    def fits(self, pixels) -> bool:
        return (int(pixels.shape[0]), int(pixels.shape[1])) == self.shape and \
            pixels.device == self.device

    def start(self, pixels, producer_event) -> int:
        """Begin copying `pixels` into a host buffer; returns its slot."""
        slot, self._next = self._next, (self._next + 1) % len(self.host)
        if not pixels.is_cuda:
            self.host[slot][..., :3] = pixels.numpy()
            return slot
        import torch

        stream = self.stream
        with torch.cuda.stream(stream):
            wait_for_producer(stream, pixels, producer_event)
            self.staging[..., :3].copy_(pixels)
            self.host_t[slot].copy_(self.staging, non_blocking=True)
            self.events[slot].record(stream)
        pixels.record_stream(stream)  # the allocator must not reuse it before the copy ran
        return slot

    def wait(self, slot: int) -> np.ndarray:
        """The finished host buffer [H, W, 4] for `slot` (waits for its copy only)."""
        if len(self.host) > 1:
            self.events[slot].synchronize()
        return self.host[slot]

    def synchronize(self) -> None:
        """Wait for every copy started here (call before dropping these buffers)."""
        if self.stream is not None:
            self.stream.synchronize()


def producer_event(pixels):
    """On the engine thread: a CUDA event where `pixels` are complete on their stream (None
    for CPU frames), so a sink thread's copy waits for exactly that work and nothing else."""
    if not getattr(pixels, "is_cuda", False):
        return None
    import torch

    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(pixels.device))
    return event


def wait_for_producer(stream, pixels, producer_event) -> None:
    """Make a sink's private CUDA `stream` wait for the work that produces `pixels`: their
    producer event, or without one everything queued on the device's default stream."""
    import torch

    if producer_event is not None:
        stream.wait_event(producer_event)
    else:
        stream.wait_stream(torch.cuda.default_stream(pixels.device))
