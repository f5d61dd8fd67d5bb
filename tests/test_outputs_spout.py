"""The Spout sink behind the sink interface, against a stand-in for SpoutGL.

Spout itself runs only on Windows (SpoutGL ships Windows wheels only), so this is the one place
in the project where a library is replaced: `fake_spoutgl` below. It is strict where the real
binding is (jlai/Python-SpoutGL src/PySpoutGL.cpp, see shared/notes/io-and-controllers.md §1):
pybind11 methods without argument names, so keyword arguments and missing arguments are
TypeErrors; width and height are unsigned ints, invert a bool; the buffer must be C-contiguous
and hold width*height*4 bytes for GL_RGBA or it raises BufferError; and with no OpenGL context
current on the calling thread `sendImage`/`sendTexture` return False, as the real ones do.
"""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest
import torch

from ganinstrument.common.frame import Frame
from ganinstrument.outputs import SinkError, open_sinks
from ganinstrument.outputs import spout as spout_module
from ganinstrument.outputs.spout import SpoutSink

GL_RGBA, GL_BGRA_EXT, GL_RGB, GL_BGR_EXT = 0x1908, 0x80E1, 0x1907, 0x80E0
GL_TEXTURE_2D = 0x0DE1
BYTES_PER_PIXEL = {GL_RGBA: 4, GL_BGRA_EXT: 4, GL_RGB: 3, GL_BGR_EXT: 3}


def _is_uint(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 0


def positional(*checks):
    """A pybind11-like method: exactly len(checks) positional arguments, each checked."""
    def wrap(fn):
        def method(self, *args, **kwargs):
            if kwargs:
                raise TypeError(f"{fn.__name__}(): incompatible function arguments "
                                f"(keywords {sorted(kwargs)} are not accepted)")
            if len(args) != len(checks):
                raise TypeError(f"{fn.__name__}(): takes {len(checks)} arguments, "
                                f"{len(args)} given")
            for i, (arg, check) in enumerate(zip(args, checks)):
                if not check(arg):
                    raise TypeError(f"{fn.__name__}(): argument {i} has the wrong type "
                                    f"{type(arg).__name__}")
            self.module.calls.append((fn.__name__, threading.get_ident(), args))
            return fn(self, *args)
        method.__name__ = fn.__name__
        return method
    return wrap


def make_fake_spoutgl(create_ok: bool = True):
    module = types.ModuleType("SpoutGL")
    module.calls = []
    module.images = []  # what receivers would see: [H, W, 4] copies
    module.gl = threading.local()  # which thread has a current context
    module.broken = False
    module.enums = types.SimpleNamespace(GL_RGBA=GL_RGBA, GL_BGRA_EXT=GL_BGRA_EXT,
                                         GL_RGB=GL_RGB, GL_BGR_EXT=GL_BGR_EXT)
    is_str, is_bool = (lambda v: isinstance(v, str)), (lambda v: isinstance(v, bool))

    class SpoutSender:
        def __init__(self, *args):
            if args:
                raise TypeError("SpoutSender() takes no arguments")
            self.module = module

        @positional()
        def createOpenGL(self):
            if create_ok:
                module.gl.current = True
            return create_ok

        @positional()
        def closeOpenGL(self):
            module.gl.current = False
            return True

        @positional(is_str)
        def setSenderName(self, name):
            pass

        @positional(lambda v: True, _is_uint, _is_uint, lambda v: v in BYTES_PER_PIXEL,
                    is_bool, _is_uint)
        def sendImage(self, buffer, width, height, gl_format, invert, host_fbo):
            view = memoryview(buffer)
            if not view.c_contiguous:
                raise BufferError("buffer is not C-contiguous")
            bpp = BYTES_PER_PIXEL[gl_format]
            if view.nbytes < width * height * bpp:
                raise BufferError(f"buffer too small: {view.nbytes} < {width * height * bpp}")
            if not getattr(module.gl, "current", False) or module.broken:
                return False
            flat = np.frombuffer(view.cast("B"), np.uint8)[: width * height * bpp]
            module.images.append(flat.reshape(height, width, bpp).copy())
            return True

        @positional(_is_uint, _is_uint, _is_uint, _is_uint, is_bool, _is_uint)
        def sendTexture(self, texture, target, width, height, invert, host_fbo):
            return bool(getattr(module.gl, "current", False)) and not module.broken

        @positional(is_str)
        def setFrameSync(self, name):
            pass

        @positional()
        def releaseSender(self):
            pass

    module.SpoutSender = SpoutSender
    return module


@pytest.fixture
def fake_spoutgl(monkeypatch):
    module = make_fake_spoutgl()
    monkeypatch.setitem(sys.modules, "SpoutGL", module)
    return module


def asymmetric(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Not square, not symmetric: a swapped width/height or a flip shows."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 3
    img[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 5
    img[..., 2] = i
    return img


def test_the_stand_in_is_as_strict_as_the_binding():
    module = make_fake_spoutgl()
    sender = module.SpoutSender()
    buf = np.zeros((48, 64, 4), np.uint8)
    with pytest.raises(TypeError):
        sender.sendImage(buf, 64, 48, GL_RGBA, False)  # hostFbo has no default in Python
    with pytest.raises(TypeError):
        sender.sendImage(buf, 64, 48, GL_RGBA, invert=False, hostFbo=0)
    with pytest.raises(TypeError):
        sender.sendImage(buf, 64.0, 48, GL_RGBA, False, 0)
    with pytest.raises(BufferError):
        sender.sendImage(buf[:, :32], 64, 48, GL_RGBA, False, 0)
    assert sender.sendImage(buf, 64, 48, GL_RGBA, False, 0) is False  # no GL context yet
    assert sender.createOpenGL() is True
    assert sender.sendImage(buf, 64, 48, GL_RGBA, False, 0) is True
    other = []
    t = threading.Thread(target=lambda: other.append(sender.sendImage(buf, 64, 48, GL_RGBA,
                                                                      False, 0)))
    t.start()
    t.join()
    assert other == [False]  # the context is current on its own thread only


def test_sends_rgba_on_one_thread_in_the_right_order(fake_spoutgl):
    sink = SpoutSink("Deck A")
    sink.open(64, 48, 30)
    frames = [Frame(torch.from_numpy(asymmetric(i)), i / 30, i) for i in range(3)]
    for f in frames:
        assert sink.submit(f)
        assert sink.wait_idle(5)
    assert sink.close(5)
    names = [name for name, _, _ in fake_spoutgl.calls]
    assert names == ["createOpenGL", "setSenderName"] + ["sendImage"] * 3 + \
        ["releaseSender", "closeOpenGL"]
    threads = {tid for _, tid, _ in fake_spoutgl.calls}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert fake_spoutgl.calls[1][2] == ("Deck A",)
    _, _, (buffer, width, height, fmt, invert, fbo) = fake_spoutgl.calls[2]
    assert (width, height, fmt, invert, fbo) == (64, 48, GL_RGBA, False, 0)
    for f, sent in zip(frames, fake_spoutgl.images):
        np.testing.assert_array_equal(sent[..., :3], f.image)
        assert (sent[..., 3] == 255).all()
    assert sink.path == "readback" and sink.stats.written == 3


def test_flip_y_is_passed_as_sendimage_invert(fake_spoutgl):
    sink = SpoutSink(flip_y=True)
    sink.open(64, 48, 30)
    sink.submit(Frame(torch.from_numpy(asymmetric(0)), 0.0, 0))
    sink.wait_idle(5)
    sink.close(5)
    assert fake_spoutgl.calls[2][2][4] is True


def test_no_gl_context_fails_at_open(monkeypatch):
    monkeypatch.setitem(sys.modules, "SpoutGL", make_fake_spoutgl(create_ok=False))
    with pytest.raises(SinkError, match="createOpenGL"):
        SpoutSink().open(64, 48, 30)


def test_repeated_false_sends_switch_the_sink_off(fake_spoutgl, monkeypatch):
    monkeypatch.setattr(spout_module, "MAX_FAILED_SENDS", 3)
    fake_spoutgl.broken = True
    sink = SpoutSink()
    sink.open(64, 48, 30)
    for i in range(5):
        sink.submit(Frame(torch.from_numpy(asymmetric(i)), i / 30, i))
        sink.wait_idle(5)
    stats = sink.stats
    assert stats.errors == 1 and not stats.enabled and "returned False" in stats.last_error
    assert sink.close(5)
    assert [n for n, _, _ in fake_spoutgl.calls][-2:] == ["releaseSender", "closeOpenGL"]


def test_open_sinks_builds_spout_from_the_spec(fake_spoutgl):
    sinks = open_sinks("spout:Stage Left,null", 64, 48, 30)
    sinks.submit(Frame(torch.from_numpy(asymmetric(0)), 0.0, 0))
    sinks.get("spout").wait_idle(5)
    assert sinks.close(5)
    assert ("Stage Left",) in [args for name, _, args in fake_spoutgl.calls
                               if name == "setSenderName"]
    assert len(fake_spoutgl.images) == 1


def test_a_size_change_sends_each_frame_at_its_own_size(fake_spoutgl):
    # The readback buffers are replaced (the old ones synchronized first) when the size changes.
    sink = SpoutSink()
    sink.open(64, 48, 30)
    sizes = [(48, 64), (24, 32), (24, 32), (48, 64)]
    frames = [Frame(torch.from_numpy(asymmetric(i, h, w)), i / 30, i)
              for i, (h, w) in enumerate(sizes)]
    for f in frames:
        assert sink.submit(f)
        assert sink.wait_idle(5)
    assert sink.close(5)
    sent_sizes = [args[1:3] for name, _, args in fake_spoutgl.calls if name == "sendImage"]
    assert sent_sizes == [(w, h) for h, w in sizes] and len(fake_spoutgl.images) == 4
    for f, sent in zip(frames, fake_spoutgl.images):
        np.testing.assert_array_equal(sent[..., :3], f.image)
        assert (sent[..., 3] == 255).all()
    assert sink.stats.errors == 0 and sink.stats.written == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("pipelined", [False, True])
def test_cuda_frames_go_through_pinned_readback(fake_spoutgl, pipelined):
    sink = SpoutSink(zero_copy=False, pipelined=pipelined)
    sink.open(64, 48, 30)
    # The third frame changes the size: new staging buffer, whose alpha fill must land first.
    sizes = [(48, 64), (48, 64), (24, 32), (24, 32)]
    frames = [Frame(torch.from_numpy(asymmetric(i, h, w)).cuda(), i / 30, i)
              for i, (h, w) in enumerate(sizes)]
    for f in frames:
        sink.submit(f)
        sink.wait_idle(5)
    assert sink.close(5)
    assert len(fake_spoutgl.images) == 4
    for f, sent in zip(frames, fake_spoutgl.images):
        np.testing.assert_array_equal(sent[..., :3], f.image)
        assert (sent[..., 3] == 255).all()


# -- the zero-copy texture's own bookkeeping -----------------------------------------------------
# CUDA-OpenGL interop needs an NVIDIA GPU with a GL context on it; this machine has neither, so
# here cuda-python's runtime and PyOpenGL are stand-ins that record what was made and given back.
# They check only that a texture or registration made part way is released again.

class _FakeCudaRuntime:
    class cudaError_t:
        cudaSuccess = 0
        cudaErrorUnknown = 999

    class cudaGLDeviceList:
        cudaGLDeviceListAll = 1

    class cudaGraphicsRegisterFlags:
        cudaGraphicsRegisterFlagsWriteDiscard = 2

    def __init__(self, register_error=0, unregister_error=0):
        self.register_error, self.unregister_error = register_error, unregister_error
        self.registered, self.unregistered = [], []

    def cudaGLGetDevices(self, count, which):
        return (0, 1, [0])

    def cudaGraphicsGLRegisterImage(self, texture, target, flags):
        if self.register_error:
            return (self.register_error, None)
        self.registered.append(texture)
        return (0, f"resource-{texture}")

    def cudaGraphicsUnregisterResource(self, resource):
        self.unregistered.append(resource)
        return (self.unregister_error,)


def _fake_gl():
    gl = types.SimpleNamespace(GL_TEXTURE_2D=GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER=1, GL_TEXTURE_MAG_FILTER=2,
                               GL_LINEAR=3, GL_RGBA8=4, GL_RGBA=GL_RGBA, GL_UNSIGNED_BYTE=5)
    gl.made, gl.deleted = [], []
    gl.glGenTextures = lambda n: (gl.made.append(7 + len(gl.made)), gl.made[-1])[1]
    gl.glDeleteTextures = lambda names: gl.deleted.extend(names)
    gl.glBindTexture = gl.glTexParameteri = gl.glTexImage2D = lambda *a: None
    return gl


@pytest.fixture
def fake_interop(monkeypatch):
    import contextlib

    gl = _fake_gl()
    opengl = types.ModuleType("OpenGL")
    opengl.GL = gl
    monkeypatch.setitem(sys.modules, "OpenGL", opengl)
    monkeypatch.setitem(sys.modules, "OpenGL.GL", gl)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    def use(rt):
        monkeypatch.setattr(spout_module, "_cuda_runtime", lambda: rt)
        return gl
    return use


def test_a_failed_registration_gives_the_texture_back(fake_interop):
    rt = _FakeCudaRuntime(register_error=_FakeCudaRuntime.cudaError_t.cudaErrorUnknown)
    gl = fake_interop(rt)
    with pytest.raises(RuntimeError, match="cudaGraphicsGLRegisterImage failed"):
        spout_module._CudaGLTexture(32, 16, torch.device("cuda", 0))
    assert gl.made == [7] and gl.deleted == [7]  # the texture made before the failure is deleted
    assert rt.registered == [] and rt.unregistered == []


def test_a_failure_after_registration_unregisters_and_deletes(fake_interop, monkeypatch):
    rt = _FakeCudaRuntime()
    gl = fake_interop(rt)

    def no_stream(device):
        raise RuntimeError("no CUDA stream for you")
    monkeypatch.setattr(torch.cuda, "Stream", no_stream)
    with pytest.raises(RuntimeError, match="no CUDA stream"):
        spout_module._CudaGLTexture(32, 16, torch.device("cuda", 0))
    assert rt.registered == [7] and rt.unregistered == ["resource-7"]
    assert gl.deleted == [7]


def test_an_unregister_error_is_logged_and_the_texture_still_deleted(fake_interop, caplog):
    rt = _FakeCudaRuntime(unregister_error=_FakeCudaRuntime.cudaError_t.cudaErrorUnknown)
    gl = fake_interop(rt)
    tex = spout_module._CudaGLTexture.__new__(spout_module._CudaGLTexture)
    tex.rt, tex.GL, tex.device = rt, gl, torch.device("cuda", 0)
    tex.texture, tex.resource, tex.stream = 9, "resource-9", None
    with caplog.at_level("WARNING", logger=spout_module.log.name):
        tex.release()
        tex.release()  # twice is harmless
    assert rt.unregistered == ["resource-9"] and gl.deleted == [9]
    assert "could not unregister" in caplog.text and "999" in caplog.text
