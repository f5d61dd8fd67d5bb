"""Spout output (Windows): frames to Resolume, TouchDesigner, OBS... through SpoutGL.

Everything Spout runs on the sink's own thread, which first makes an OpenGL context current
there with `createOpenGL()`: without a current GL context SpoutGL's `sendImage` quietly
returns False (jlai/Python-SpoutGL#15). SpoutGL has no type stubs and binds its methods
without argument names, so every argument is passed, positionally, in the C++ order:
    sendImage(buffer, width, height, GL_RGBA, invert, hostFbo)
    sendTexture(texture, GL_TEXTURE_2D, width, height, invert, hostFbo)

Two ways a frame gets there:
  * readback (any device): the frame becomes uint8 RGBA on its own device; a CUDA frame is
    copied on a private stream into one of two pinned host buffers (non-blocking, an event per
    buffer), so the sink thread waits only for its own copy, never for the engine's queued
    work; then `sendImage`. With `pipelined=True` the copy of frame n runs while frame n-1 is
    being sent (one frame of extra latency for throughput at 4K).
  * zero-copy (CUDA frames, `zero_copy="auto"`): the RGBA frame is copied device-to-device
    into a GL texture registered with CUDA (CUDA-OpenGL interop, cuda-python + PyOpenGL), and
    `sendTexture` hands it to Spout as a GPU blit. Any failure there (no cuda-python, GL on
    another GPU...) is logged once and the sink falls back to readback.

Orientation: our rows run top to bottom. `sendImage(..., invert=False)` keeps that; the
interop texture holds the same rows in the same memory order, so it is sent with
`invert=False` too (`True` is for textures GL rendered bottom-up). `flip_y` flips both.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from .base import SinkError, SinkUnavailableError, ThreadedSink
from .readback import RgbaReadback, producer_event

log = logging.getLogger(__name__)

GL_RGBA = 0x1908
GL_TEXTURE_2D = 0x0DE1
MAX_FAILED_SENDS = 30  # consecutive False returns before the sink gives up


def import_spoutgl():
    """The SpoutGL module, or `SinkUnavailableError` saying why not."""
    try:
        import SpoutGL
    except ImportError as err:
        if sys.platform != "win32":
            raise SinkUnavailableError(
                "spout: only on Windows (SpoutGL is Windows-only)") from err
        raise SinkUnavailableError(
            "spout: SpoutGL is not installed (pip install ganinstrument[spout])") from err
    return SpoutGL


class SpoutSink(ThreadedSink):
    """A Spout sender named `sender_name`; latest frame wins."""

    def __init__(self, sender_name: str = "ganinstrument", *, name: str = "spout",
                 zero_copy: str | bool = "auto", pipelined: bool = False,
                 flip_y: bool = False, frame_sync: bool = False):
        super().__init__(name, queue_size=1)
        if zero_copy not in ("auto", True, False):
            raise ValueError(f"zero_copy must be 'auto', True or False, got {zero_copy!r}")
        self.sender_name = sender_name
        self.zero_copy = zero_copy
        self.pipelined = pipelined
        if pipelined:  # send the copied frame even when no newer one comes
            self.tick_s = 1 / 60
        self.flip_y = flip_y
        self.frame_sync = frame_sync
        self.path: str | None = None  # "readback" or "zero-copy", once a frame went out
        self.failed_sends = 0
        # Owned by the sink thread:
        self._sender = None
        self._readback: RgbaReadback | None = None
        self._interop = None
        self._interop_tried = False
        self._pending = None  # pipelined: (slot, width, height) copied but not yet sent
        self._gl_rgba = GL_RGBA

    def _prepare(self, frame):
        # On the engine thread: mark where the frame's pixels are complete on its stream, so
        # the sink's copy waits for exactly that work (an event record: no waiting here).
        return frame, producer_event(frame.pixels)

    def _start(self) -> None:
        spout = import_spoutgl()
        enums = getattr(spout, "enums", None)
        self._gl_rgba = getattr(enums, "GL_RGBA", GL_RGBA)
        sender = spout.SpoutSender()
        if not sender.createOpenGL():
            raise SinkError("spout: createOpenGL() failed: no OpenGL context for Spout "
                            "(is this a Windows service or a remote session?)")
        self._sender = sender
        sender.setSenderName(self.sender_name)
        log.info("spout: sending as %r", self.sender_name)

    def _write(self, item) -> None:
        frame, event = item
        pixels = frame.pixels  # [H, W, 3] uint8 on the render device
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        if pixels.is_cuda and self.zero_copy and not self._interop_tried:
            self._interop_tried = True
            self._interop = self._try_interop(width, height, pixels.device)
        if self._interop is not None:
            try:
                self._flush_pending()
                self._send_zero_copy(pixels, event, width, height)
                return
            except Exception as err:
                log.warning("spout: zero-copy send failed (%s); using readback from now on", err)
                self._release_interop()
        self._send_readback(pixels, event, width, height)

    def _tick(self) -> None:
        self._flush_pending()

    # -- readback ----------------------------------------------------------------------

    def _send_readback(self, pixels, event, width: int, height: int) -> None:
        if self._readback is None or not self._readback.fits(pixels):
            self._flush_pending()
            if self._readback is not None:
                self._readback.synchronize()  # no copy may still use the buffers we drop
            self._readback = RgbaReadback(pixels)
        slot = self._readback.start(pixels, event)
        if not self.pipelined or not pixels.is_cuda:
            self._send_image(self._readback.wait(slot), width, height)
            return
        self._flush_pending()
        self._pending = (slot, width, height)

    def _flush_pending(self) -> None:
        if self._pending is None:
            return
        slot, width, height = self._pending
        self._pending = None
        self._send_image(self._readback.wait(slot), width, height)

    def _send_image(self, rgba: np.ndarray, width: int, height: int) -> None:
        ok = self._sender.sendImage(rgba, width, height, self._gl_rgba, bool(self.flip_y), 0)
        self._after_send(ok, "readback")

    def _after_send(self, ok: bool, path: str) -> None:
        if ok:
            self.failed_sends = 0
            self.path = path
            if self.frame_sync:
                self._sender.setFrameSync(self.sender_name)
            return
        self.failed_sends += 1
        if self.failed_sends >= MAX_FAILED_SENDS:
            raise SinkError(f"spout: the last {self.failed_sends} sends returned False "
                            "(no GL/DirectX sharing on this machine?)")

    # -- zero-copy ---------------------------------------------------------------------

    def _try_interop(self, width: int, height: int, device):
        try:
            return _CudaGLTexture(width, height, device)
        except Exception as err:
            level = logging.WARNING if self.zero_copy is True else logging.INFO
            log.log(level, "spout: zero-copy unavailable (%s); using pinned readback", err)
            return None

    def _send_zero_copy(self, pixels, event, width: int, height: int) -> None:
        interop = self._interop
        if (width, height) != (interop.width, interop.height):
            interop.release()
            self._interop = interop = _CudaGLTexture(width, height, pixels.device)
        interop.copy_from(pixels, event)
        ok = self._sender.sendTexture(interop.texture, GL_TEXTURE_2D, width, height,
                                      bool(self.flip_y), 0)
        self._after_send(ok, "zero-copy")

    def _release_interop(self) -> None:
        interop, self._interop = self._interop, None
        if interop is not None:
            try:
                interop.release()
            except Exception as err:
                log.debug("spout: releasing the interop texture failed: %s", err)

    def _finish(self) -> None:
        sender, self._sender = self._sender, None
        if sender is None:
            return
        try:
            self._flush_pending()  # pipelined: the last copied frame still goes out
        except Exception as err:
            log.warning("spout: the last frame could not be sent: %s", err)
        try:
            self._release_interop()
        finally:
            sender.releaseSender()
            sender.closeOpenGL()


def _cuda_runtime():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6 (13.x removed cuda.cudart)
    except ImportError:
        from cuda import cudart as runtime  # older cuda-python
    return runtime


def _check(rt, result, what: str):
    err = result[0]
    if err != rt.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{what} failed: {err}")
    return result[1:]


class _CudaGLTexture:
    """A GL RGBA8 texture registered with CUDA, filled device-to-device from RGBA frames.

    Created and used on the thread whose GL context is current (the Spout thread). Needs
    cuda-python and PyOpenGL, and the GL context on the same NVIDIA GPU as the frames.
    """

    def __init__(self, width: int, height: int, device):
        import torch
        from OpenGL import GL

        rt = _cuda_runtime()
        self.rt, self.GL = rt, GL
        self.width, self.height = width, height
        self.device = device
        self.texture, self.resource, self.stream = 0, None, None
        try:
            self._create(torch)
        except BaseException:
            self.release()  # a step failed: give back the texture and registration made so far
            raise

    def _create(self, torch) -> None:
        rt, GL, device = self.rt, self.GL, self.device
        width, height = self.width, self.height
        # cuda-python works in the calling thread's current CUDA context, which on this
        # thread is device 0's unless we make the frames' device current (--device cuda:1).
        with torch.cuda.device(device):
            count, devices = _check(rt, rt.cudaGLGetDevices(
                1, rt.cudaGLDeviceList.cudaGLDeviceListAll), "cudaGLGetDevices")
            index = device.index if device.index is not None else torch.cuda.current_device()
            if count < 1 or index not in list(devices)[:count]:
                raise RuntimeError("the OpenGL context is not on the CUDA device of the "
                                   "frames (a laptop's integrated GPU?)")
            self.texture = int(GL.glGenTextures(1))
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, width, height, 0, GL.GL_RGBA,
                            GL.GL_UNSIGNED_BYTE, None)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            (self.resource,) = _check(rt, rt.cudaGraphicsGLRegisterImage(
                self.texture, GL.GL_TEXTURE_2D,
                rt.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard),
                "cudaGraphicsGLRegisterImage")
        self.stream = torch.cuda.Stream(device)
        # Allocated and filled on the stream that uses it (see readback.RgbaReadback.__init__).
        with torch.cuda.stream(self.stream):
            self.staging = torch.full((height, width, 4), 255, dtype=torch.uint8,
                                      device=device)  # [H, W, 4] contiguous, alpha 255

    def copy_from(self, pixels, producer_event) -> None:
        """Copy [H, W, 3] uint8 CUDA pixels into the texture (GL sees it after unmap)."""
        import torch

        rt, stream = self.rt, self.stream
        with torch.cuda.stream(stream):
            if producer_event is not None:
                stream.wait_event(producer_event)
            self.staging[..., :3].copy_(pixels)
        pixels.record_stream(stream)
        handle = stream.cuda_stream
        with torch.cuda.device(self.device):  # cuda-python: the frames' context, see __init__
            _check(rt, rt.cudaGraphicsMapResources(1, self.resource, handle), "map")
            try:
                (array,) = _check(rt, rt.cudaGraphicsSubResourceGetMappedArray(
                    self.resource, 0, 0), "get mapped array")
                pitch = self.width * 4  # bytes per row, RGBA8
                _check(rt, rt.cudaMemcpy2DToArrayAsync(
                    array, 0, 0, self.staging.data_ptr(), pitch, pitch, self.height,
                    rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, handle), "copy to texture")
            finally:
                # Unmapping orders the copy before any GL work issued after it (sendTexture).
                _check(rt, rt.cudaGraphicsUnmapResources(1, self.resource, handle), "unmap")

    def release(self) -> None:
        """Give back the registration, the texture and the staging buffer (safe to call twice,
        and on an object whose creation failed part way)."""
        import torch

        if self.resource is not None or self.stream is not None:
            with torch.cuda.device(self.device):  # cuda-python: the frames' context, see __init__
                # The last copy into the texture may still be running on our stream: finish it
                # before the texture is unregistered and deleted and the staging buffer freed.
                if self.stream is not None:
                    self.stream.synchronize()
                if self.resource is not None:
                    err = self.rt.cudaGraphicsUnregisterResource(self.resource)[0]
                    self.resource = None
                    if err != self.rt.cudaError_t.cudaSuccess:
                        log.warning("spout: could not unregister the shared texture from CUDA (%s)", err)
        if self.texture:
            self.GL.glDeleteTextures([self.texture])
            self.texture = 0
