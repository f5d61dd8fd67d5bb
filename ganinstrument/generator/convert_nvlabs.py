"""NVlabs PyTorch network pickles (stylegan2-ada-pytorch, stylegan3 and forks) -> our generators.

The pickle, read by `safe_pickle`, gives `PersistentObject`s: for each module its class name and
its pickled `__dict__` (`_parameters`, `_buffers`, `_modules`, `_init_args`, `_init_kwargs`, ...).
The embedded module source is never used; the architecture is recognised from the module tree
(StyleGAN3's synthesis network has a `SynthesisInput`, StyleGAN2's has `SynthesisBlock`s).
"""

from __future__ import annotations

from ..common.errors import ModelLoadError
from .model_data import ModelData
from .safe_pickle import PersistentObject

# NVlabs Generator.__init__ positional order, for pickles that recorded positional arguments.
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_NETWORK_KEYS = ("G_ema", "G", "D", "augment_pipe")


def is_network_pickle(obj) -> bool:
    """Whether an unpickled object looks like an NVlabs network pickle (a dict of networks, or one)."""
    if isinstance(obj, PersistentObject):
        return True
    return isinstance(obj, dict) and any(isinstance(obj.get(k), PersistentObject) for k in _NETWORK_KEYS)


def pick_generator(obj, path) -> PersistentObject:
    """The generator to play: 'G_ema' of a training snapshot, else a bare pickled Generator."""
    if isinstance(obj, PersistentObject):
        return obj
    for key in ("G_ema", "G"):
        if isinstance(obj.get(key), PersistentObject):
            return obj[key]
    raise ModelLoadError(path, "the network pickle holds no generator ('G_ema' or 'G')", f"keys found: {_few(obj)}")


def generator_kind(G: PersistentObject, path) -> str:
    """'sg2' or 'sg3' from the class names in the module tree."""
    if G.class_name != "Generator":
        raise ModelLoadError(
            path,
            f"unknown architecture: the network's class is {G.class_name!r}",
            "supported: NVlabs StyleGAN2 / StyleGAN2-ADA / StyleGAN3 'Generator' networks",
        )
    synthesis = _modules(G, path).get("synthesis")
    if not isinstance(synthesis, PersistentObject) or synthesis.class_name != "SynthesisNetwork":
        raise ModelLoadError(path, "unknown architecture: the Generator has no NVlabs 'SynthesisNetwork'")
    children = {m.class_name for m in _modules(synthesis, path).values() if isinstance(m, PersistentObject)}
    if "SynthesisInput" in children:
        return "sg3"
    if "SynthesisBlock" in children:
        return "sg2"
    raise ModelLoadError(
        path,
        f"unknown architecture: synthesis layers of classes {sorted(children)}",
        "expected StyleGAN2 'SynthesisBlock's or StyleGAN3 'SynthesisInput' + 'SynthesisLayer's",
    )


def init_kwargs(G: PersistentObject, path) -> dict:
    """The constructor arguments recorded by NVlabs' persistence decorator, as plain JSON-able data."""
    state = G.state
    args = state.get("_init_args", state.get("init_args", ())) or ()
    kwargs = state.get("_init_kwargs", state.get("init_kwargs", {})) or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise ModelLoadError(path, "the Generator's recorded constructor arguments are malformed")
    if len(args) > len(_POSITIONAL):
        raise ModelLoadError(path, f"the Generator was built with {len(args)} positional arguments; at most 5 expected")
    out = dict(zip(_POSITIONAL, args))
    out.update(kwargs)
    return _plain(out, path)


def state_dict(module: PersistentObject, path, prefix: str = "") -> dict:
    """The flat NVlabs state_dict of a pickled module tree (parameters, then persistent buffers)."""
    import torch

    state = module.state
    out = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if not isinstance(entries, dict):
            raise ModelLoadError(path, f"{prefix or 'the network'}: {group} is not a dict")
        for name, tensor in entries.items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ModelLoadError(path, f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor
    for name, child in _modules(module, path).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise ModelLoadError(path, f"submodule {prefix}{name} is a {type(child).__name__}, not a network module")
        out.update(state_dict(child, path, prefix + name + "."))
    return out


def convert(obj, path) -> ModelData:
    """The generator in an unpickled NVlabs network pickle, as ModelData."""
    G = pick_generator(obj, path)
    kind = generator_kind(G, path)
    return ModelData(kind, init_kwargs(G, path), state_dict(G, path))


def _modules(module: PersistentObject, path) -> dict:
    modules = module.state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise ModelLoadError(path, f"module {module.class_name!r} has malformed submodules")
    return modules


def _plain(value, path):
    """Copy kwargs into plain JSON types (EasyDicts become dicts, tuples lists, numpy numbers Python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, path) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item(), path)
    raise ModelLoadError(path, f"the Generator's constructor arguments hold a {type(value).__name__}")


def _few(obj, n: int = 6) -> str:
    keys = [str(k) for k in (obj.keys() if isinstance(obj, dict) else [])]
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") or "none"
