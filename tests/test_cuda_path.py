"""The frame path as it runs on a GPU, checked on a machine without one.

The scene (latent, weight edits, a blend toward a second network, directions, activation bends
and the layer view) is built for real on the CPU; then every tensor it holds moves to PyTorch's
`meta` device (shapes and dtypes, no data), where float16 is allowed as on CUDA. Frames are
drawn there with every target moving, while two interposers watch each call and each op for
what would make the host wait for the GPU, or copy by the slow path, on a real card:
- a value read back (.item(), .tolist(), bool(), float(), .cpu(), .numpy());
- a selection by a boolean mask (the GPU must count it first: nonzero);
- host data sent without pinning (`torch.tensor(..., device=...)`, `.to(device)`, `.copy_`
  from a host tensor, or a host tensor inside a device op);
- a convolution or matrix product whose operands' dtypes differ (CUDA refuses those).
Values reach the device only through generator.device.upload (pinned memory, queued like a
kernel); pinned memory needs a GPU, so here a recorder stands in for it.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ganinstrument.generator import device as device_module
from ganinstrument.generator import load_generator
from ganinstrument.generator.stylegan2 import NOISE_MODES
from ganinstrument.generator.stylegan2 import Generator as StyleGAN2
from ganinstrument.scene.latent import LatentConfig
from ganinstrument.scene.scene import RenderParams, Scene

META = torch.device("meta")
_FROM_HOST = {torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor}
_TO_HOST = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.__bool__,
            torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.__repr__,
            torch.Tensor.__format__}  # (printing a tensor, in a log line, reads it back)
SOBEL_KERNEL = (1, 1, 3, 3)  # (the sobel bend's own convolution, float32 by design)
_EXPLICIT_MOVES = {torch.Tensor.to, torch.Tensor.copy_, torch.Tensor.cuda}
# ops CUDA runs only on operands of one floating dtype (no promotion: the meta device lets them by)
_SAME_DTYPE_OPS = ("aten.convolution", "aten.mm", "aten.bmm", "aten.addmm", "aten.baddbmm", "aten.mv",
                   "aten.index_copy", "aten.index_put", "aten.grid_sampler_2d", "aten.lerp")
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
# what the bends and the view must have run (each transform's own op), so that the check saw them
BEND_OPS = ("aten.roll", "aten.grid_sampler_2d", "aten.flip", "aten.max_pool2d_with_indices", "aten.index_select",
            "aten.index_copy", "aten.hypot", "aten.amax")


def _where() -> str:
    frames = [f for f in traceback.extract_stack() if "/ganinstrument/" in f.filename]
    return "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[-3:]) or "(outside the package)"


def _tensors(*trees) -> list[torch.Tensor]:
    return [t for t in tree_leaves(trees) if isinstance(t, torch.Tensor)]


class _Calls(TorchFunctionMode):
    """Python-level calls that cross between host and device."""

    def __init__(self, found: list[str]):
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = _tensors(args, kwargs)
        on_device = any(t.device.type != "cpu" for t in inputs)
        host = [t for t in inputs if t.device.type == "cpu" and (t.dim() > 0 or func in _EXPLICIT_MOVES)]
        name = getattr(func, "__name__", str(func))
        if func in _TO_HOST and on_device:
            self.found.append(f"read back to the host: {name} @ {_where()}")
        elif func in _INDEXING and on_device and _host_index(args[1]):
            self.found.append(f"indexing by a host list (copied synchronously): {name} @ {_where()}")
        elif on_device and host:  # (seen before the call: the op may refuse them)
            self.found.append(f"host tensor {tuple(host[0].shape)} in a device op: {name} @ {_where()}")
        out = func(*args, **kwargs)
        sent = any(t.device.type != "cpu" for t in _tensors(out))
        if sent and func in _FROM_HOST:
            self.found.append(f"host data sent unpinned: torch.{name}(..., device=) @ {_where()}")
        elif sent and host and not on_device:
            self.found.append(f"host tensor {tuple(host[0].shape)} sent unpinned: {name} @ {_where()}")
        return out


def _host_index(index) -> bool:
    """An index made of Python lists, ranges or arrays (PyTorch copies them to the device)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, range)) or type(p).__module__ == "numpy" and getattr(p, "ndim", 0) > 0
               for p in parts)


class _Ops(TorchDispatchMode):
    """Ops that make the GPU report to the host, or that CUDA refuses for their dtypes."""

    def __init__(self, found: list[str]):
        super().__init__()
        self.found = found
        self.conv_dtypes: list[torch.dtype] = []  # (of the network's convolutions, in order)
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        self.seen.add(name.split(".")[0] + "." + name.split(".")[1])
        if "nonzero" in name or "_local_scalar_dense" in name or "masked_select" in name:
            self.found.append(f"the device reports to the host: {name} @ {_where()}")
        elif name.startswith(("aten.index.", "aten.index_put")) and any(
                t.dtype == torch.bool for t in _tensors(args[1:])):
            self.found.append(f"selection by a boolean mask (a nonzero): {name} @ {_where()}")
        if name.startswith(_SAME_DTYPE_OPS):
            dtypes = {t.dtype for t in _tensors(args, kwargs) if t.is_floating_point()}
            if len(dtypes) > 1:
                self.found.append(f"mixed dtypes {sorted(map(str, dtypes))}: {name} @ {_where()}")
            if name.startswith("aten.convolution") and tuple(args[1].shape) != SOBEL_KERNEL:
                self.conv_dtypes.append(args[0].dtype)
        return func(*args, **kwargs)


def _to_meta(obj, seen: set[int]):
    """`obj` with every tensor and module it reaches (through attributes, slots, dataclass fields,
    dicts, lists and tuples of this package's objects) moved to the meta device."""
    if isinstance(obj, torch.device):
        return META if obj.type == "cpu" else obj
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None))):
        return obj
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        return obj.to(META)
    if isinstance(obj, torch.Tensor):
        return obj.to(META)
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            obj[key] = _to_meta(value, seen)
    elif isinstance(obj, list):
        obj[:] = [_to_meta(value, seen) for value in obj]
    elif isinstance(obj, tuple):
        items = [_to_meta(value, seen) for value in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    elif (type(obj).__module__ or "").startswith("ganinstrument"):
        names = list(vars(obj)) if hasattr(obj, "__dict__") else []
        names += [n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ()) if hasattr(obj, n)]
        if dataclasses.is_dataclass(obj):
            names += [f.name for f in dataclasses.fields(obj)]
        for n in dict.fromkeys(names):
            object.__setattr__(obj, n, _to_meta(getattr(obj, n), seen))
    return obj


@pytest.fixture
def on_meta(monkeypatch):
    """Float16 allowed on the meta device, and `upload` recorded (pinned memory needs a GPU);
    yields the list of the shapes uploaded."""
    real_upload, real_half = device_module.upload, device_module.half_allowed
    uploads: list[tuple[int, ...]] = []

    def upload(array, device, dtype=None):
        uploads.append(tuple(array.shape))
        return torch.empty(array.shape, dtype=dtype or torch.from_numpy(array[:0]).dtype, device=device)

    def half_allowed(device):
        return getattr(device, "type", str(device)) in ("cuda", "meta")

    for module in [m for name, m in sys.modules.items() if name.startswith("ganinstrument")]:
        for attr, real, stand_in in (("upload", real_upload, upload), ("half_allowed", real_half, half_allowed)):
            if getattr(module, attr, None) is real:
                monkeypatch.setattr(module, attr, stand_in)
    return uploads


def _sg2_fp16(seed: int) -> torch.nn.Module:
    """A small random conditional StyleGAN2 whose top two resolutions run in float16 on a GPU."""
    torch.manual_seed(seed)
    G = StyleGAN2(z_dim=32, c_dim=3, w_dim=32, img_resolution=32, img_channels=3, mapping_kwargs={"num_layers": 2},
                  channel_base=256, channel_max=32, num_fp16_res=2, conv_clamp=256)
    return G.eval().requires_grad_(False)


def _models(kind: str, fixtures_dir):
    if kind == "sg2":
        return _sg2_fp16(1), _sg2_fp16(2)
    path = fixtures_dir / "sg3t_small" / "network-stripped.pkl"
    G, G_b = load_generator(path, device="cpu"), load_generator(path, device="cpu")
    with torch.no_grad():
        for p in G_b.parameters():
            p.mul_(1.1)
    return G, G_b


def _moved(spec) -> float:
    """A value well away from the target's default (past flip's half way; for a choice: its last)."""
    if spec.kind == "choice":
        return spec.maximum
    return spec.default + 0.6 * ((spec.maximum if spec.maximum != spec.default else spec.minimum) - spec.default)


def _frames(scene: Scene) -> list[dict[str, float]]:
    """Every target moving (a few dozen at a time, adding up: the last frames bend every layer
    at once, each on a share of its channels), then a cluster of channels on every layer, a new
    share, random noise, the layer view, and every default again (the hooks go)."""
    specs = [s for s in scene.targets() if s.name != "view" and not s.name.endswith(".cluster")]
    defaults = {s.name: s.default for s in scene.targets()}
    frames, values = [dict(defaults)], dict(defaults)
    for i in range(0, len(specs), 40):
        values.update({s.name: _moved(s) for s in specs[i:i + 40]})
        frames.append(dict(values))
    clusters = {**values, **{k: 2 for k in values if k.endswith(".cluster")}}
    return frames + [clusters, {**values, **{k: 0.3 for k in values if k.endswith(".channels")}},
                     {**values, "noise": NOISE_MODES.index("random")}, {**values, "view": 1},
                     {**values, "view": len(scene.taps)}, dict(defaults), dict(defaults)]


@pytest.mark.parametrize("kind", ["sg2", "sg3"])
def test_frames_on_the_device_never_wait_for_it_and_run_float16_where_the_model_asks(kind, fixtures_dir, on_meta):
    G, G_b = _models(kind, fixtures_dir)
    scene = Scene(G, G_b, latent=LatentConfig(directions="auto"), device=torch.device("cpu"))
    scene.activations.group()  # (perform's warm-up: the channel clusters, before the show)
    frames = _frames(scene)
    _to_meta(scene, set())
    assert all(p.device == META for p in G.parameters())

    found: list[str] = []
    ops = _Ops(found)
    hooked, convs = [], []
    with torch.no_grad(), _Calls(found), ops:
        for index, values in enumerate(frames):
            try:
                scene.update(values)
                hooked.append(len(scene.activations.hooked))
                before = len(ops.conv_dtypes)
                frame = scene.render(RenderParams.of(values, index / 30), index)
                if values["view"] == 0:  # (the whole network: its convolutions, frame by frame)
                    convs.append(ops.conv_dtypes[before:])
            except (RuntimeError, NotImplementedError) as exc:  # (meta refuses what needs data: say what was seen)
                found.append(f"frame {index} stopped: {str(exc).splitlines()[0][:120]}")
                continue
            assert frame.pixels.device == META and frame.pixels.dtype == torch.uint8
            assert frame.pixels.shape[-1] == 3
    assert not found, f"{len(found)} host round trips or refused ops, e.g.:\n" + "\n".join(dict.fromkeys(found))
    # What was watched: float16 where the model asks and float32 elsewhere, in every frame, bent
    # or not; every layer bent at once, each transform's op, and values uploaded (the latent's,
    # the channel sets).
    asks = {m.use_fp16 for m in G.synthesis.modules() if hasattr(m, "use_fp16")}  # (per block or layer)
    assert set(convs[0]) == {torch.float16 if half else torch.float32 for half in asks}, (asks, set(convs[0]))
    assert all(frame_convs == convs[0] for frame_convs in convs), "a bend changed a layer's precision"
    assert max(hooked) == len(scene.activations.layers) and hooked[-1] == 0
    assert not [op for op in BEND_OPS if op not in ops.seen], sorted(ops.seen)
    assert on_meta, "the values reached the device without going through upload"


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))


@pytest.mark.parametrize("kind", ["sg2", "sg3"])
@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_the_frames_draw_for_real_and_on_a_gpu_none_synchronizes(kind, device, fixtures_dir):
    """The same frames drawn for real; on CUDA with PyTorch's sync debug mode raising on any
    synchronizing call (a blocking copy, .item(), nonzero...). Every layer bent changes the
    picture; back at the defaults it is exactly the first again."""
    G, G_b = (g.to(device) for g in _models(kind, fixtures_dir))
    scene = Scene(G, G_b, latent=LatentConfig(directions="auto"), device=torch.device(device))
    scene.activations.group()
    frames = _frames(scene)
    gpu = device == "cuda"
    with torch.no_grad():
        scene.update(frames[0])
        first = scene.render(RenderParams.of(frames[0], 0.0), 0).pixels.clone()  # (warm: kernels, pinned blocks)
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        try:
            pictures = []
            for index, values in enumerate(frames[1:], 1):
                scene.update(values)
                pictures.append(scene.render(RenderParams.of(values, index / 30), index).pixels.clone())
        finally:
            if gpu:
                torch.cuda.set_sync_debug_mode("default")
    assert all(p.dtype == torch.uint8 and p.device.type == device for p in pictures)
    assert not torch.equal(pictures[-5], first)  # (everything moved, every layer bent: the last image frame)
    assert torch.equal(pictures[-1], first)  # (back at the defaults: exactly the first picture)


def test_the_checks_catch_what_they_look_for(on_meta):
    """The interposers themselves: each kind of round trip is seen."""
    found: list[str] = []
    x = torch.empty(2, 4, 8, 8, device=META)
    idx = device_module.upload(torch.arange(2).numpy(), META)  # (the sanctioned way)
    with _Calls(found), _Ops(found):
        for make in (lambda: torch.tensor([1.0, 2.0], device=META), lambda: torch.ones(4).to(META),
                     lambda: x + torch.ones(8), lambda: x[:, torch.tensor([True, False, True, False], device=META)],
                     lambda: x.sum().item(), lambda: torch.nn.functional.conv2d(x.half(), torch.empty(4, 4, 3, 3,
                                                                                                      device=META)),
                     lambda: x.new_tensor([1.0, 2.0]), lambda: x[:, [0, 2]], lambda: f"{x.sum()}",
                     lambda: x.half().index_copy(1, idx, x.index_select(1, idx))):
            before = len(found)
            try:
                make()
            except (RuntimeError, NotImplementedError):
                pass  # (the meta device refuses some of them too; what counts is that they were seen)
            assert len(found) > before, found
        found.clear()
        x.index_copy(1, idx, x.index_select(1, idx) * 2.0)  # index selection, by device indices
        torch.nn.functional.conv2d(x.half(), torch.empty(4, 4, 3, 3, device=META, dtype=torch.float16))
    assert not found, found
