"""Every model format, loaded safely into our own generators.

    load_generator(path_or_name, device=None) -> Generator   (eval, no grad, float32, on device)
    detect_format(path) -> str                                (from the content, not the extension)
    convert_model(src, dst) -> None                           (anything -> our .safetensors)
    save_safetensors(G, path, source=None) -> None

Formats, recognised by their first bytes and then by their structure:

| format            | looks like                          | read by                                      |
|-------------------|-------------------------------------|----------------------------------------------|
| `nvlabs-pickle`   | pickle of torch_utils.persistence   | safe_pickle (allow-list) + convert_nvlabs    |
| `tf-pickle`       | pickle of dnnlib.tflib Networks     | safe_pickle (allow-list) + convert_tf        |
| `torch`           | zip (or legacy) torch.save          | torch.load(weights_only=True) + rosinality   |
| `safetensors`     | u64 length + JSON header            | safetensors + our `ganinstrument` metadata   |

No file is ever unpickled with the standard machinery: nothing it contains can run.
"""

from __future__ import annotations

import logging
import os

from ..common.errors import ModelLoadError
from ..common.text import shorten
from .model_data import ModelData

log = logging.getLogger(__name__)

ACCEPTED = (
    "NVlabs StyleGAN2/2-ADA/3 network pickles (.pkl), TensorFlow StyleGAN2(-ADA) pickles (.pkl), "
    "rosinality stylegan2-pytorch checkpoints (.pt), ganinstrument .safetensors, or 'demo'"
)
_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_W_AVG_SAMPLES = 10_000
_W_AVG_SEED = 0


def load_generator(path_or_name, device=None):
    """A ready-to-play generator from a model file or the name "demo".

    Returns the network in eval mode, with requires_grad False and float32 parameters, on
    `pick_device(device)`. Raises ModelLoadError (a ValueError) naming the file and the reason.
    """
    from .device import pick_device

    target = pick_device(device)
    if isinstance(path_or_name, str) and path_or_name == "demo":
        from .demo import build_demo

        G = build_demo()
    else:
        data = read_model(path_or_name)
        G = build_from_data(data, path_or_name)
        G.load_notes = list(data.notes)
    G = G.float().eval().requires_grad_(False)
    return G.to(target)


def detect_format(path) -> str:
    """'nvlabs-pickle', 'tf-pickle', 'pickle', 'torch', 'safetensors' or 'demo'; ModelLoadError otherwise.

    Looks only at bytes: the magic number, and for pickles the first global they name
    (without executing anything). 'pickle' means a pickle that names neither NVlabs module.
    """
    if isinstance(path, str) and path == "demo":
        return "demo"
    head, size = _head(path)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    from .safetensors_format import looks_like_safetensors

    if looks_like_safetensors(head, size):
        return "safetensors"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        module = _first_global_module(path)
        if module is not None and module.startswith("dnnlib.tflib"):
            return "tf-pickle"
        if module is not None and module.startswith(("torch_utils", "collections", "torch")):
            return "nvlabs-pickle"
        return "pickle"
    raise ModelLoadError(path, f"unrecognised file format ({_describe_bytes(head, size)})", f"accepted: {ACCEPTED}")


def read_model(path) -> ModelData:
    """The generator described by a model file, as ModelData (nothing built yet)."""
    kind = detect_format(path)
    if kind == "demo":
        raise ModelLoadError(None, "'demo' is built in, not read from a file")
    try:
        if kind == "safetensors":
            from . import safetensors_format

            return safetensors_format.read(path)
        if kind == "torch":
            return _read_torch(path)
        return _read_pickle(path)
    except ModelLoadError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
        # The converters expect the structure of the format they were chosen for; anything
        # else in the file ends here, as one clear error.
        raise ModelLoadError(path, f"malformed {kind} model: {type(exc).__name__}: {exc}") from None


def build_from_data(data: ModelData, path=None):
    """Build the generator `data` describes and load its weights (strict, shapes checked)."""
    import torch

    from .registry import KINDS, build_generator

    if data.kind not in KINDS:
        raise ModelLoadError(path, f"unknown architecture kind {data.kind!r}", f"expected one of {', '.join(KINDS)}")
    _check_sizes(data.init_kwargs, path)
    try:
        G = build_generator(data.kind, **data.init_kwargs)
    except ModelLoadError:
        raise
    except (TypeError, ValueError, AssertionError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(path, f"cannot build a {data.kind} generator from the file's arguments: "
                             f"{type(exc).__name__}: {exc}") from None
    expected = G.state_dict()
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in data.tensors.items()}
    if data.needs_w_avg and "mapping.w_avg" in expected:
        tensors.setdefault("mapping.w_avg", torch.zeros_like(expected["mapping.w_avg"]))
    _check_keys(expected, tensors, path)
    with torch.no_grad():
        G.load_state_dict(tensors, strict=True)
        if data.needs_w_avg:
            G.mapping.w_avg.copy_(mean_w(G))
            log.info("%s: %s", path, "; ".join(data.notes))
    return G


def mean_w(G, num: int = _W_AVG_SAMPLES, seed: int = _W_AVG_SEED):
    """Mean mapping output over `num` seeded random z (deterministic): an estimate of w_avg [w_dim]."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(G.w_dim, dtype=torch.float64)
    done = 0
    with torch.no_grad():
        while done < num:
            n = min(1000, num - done)
            z = torch.randn(n, G.z_dim, generator=gen)  # [n, z_dim]
            c = torch.zeros(n, G.c_dim)
            ws = G.mapping(z, c, truncation_psi=1)  # [n, num_ws, w_dim]
            total += ws[:, 0].double().sum(dim=0)
            done += n
    return (total / num).float()


def save_safetensors(G, path, source=None) -> None:
    """Write `G` as ganinstrument .safetensors (NVlabs-keyed tensors + architecture header), atomically."""
    from . import safetensors_format

    safetensors_format.write(G, path, source=source, notes=getattr(G, "load_notes", ()))


def convert_model(src, dst) -> None:
    """Load any supported model file and write it as ganinstrument .safetensors at `dst`."""
    G = load_generator(src, device="cpu")
    save_safetensors(G, dst, source=src)


# -- reading ---------------------------------------------------------------------------------


def _read_pickle(path) -> ModelData:
    from . import convert_nvlabs, convert_tf
    from .safe_pickle import safe_load

    with open(path, "rb") as f:
        obj = safe_load(path, f.read())
    if convert_nvlabs.is_network_pickle(obj):
        return convert_nvlabs.convert(obj, path)
    if convert_tf.is_tf_pickle(obj):
        return convert_tf.convert(obj, path)
    raise ModelLoadError(path, f"a pickle of {_summary(obj)}, not a network", f"accepted: {ACCEPTED}")


def _read_torch(path) -> ModelData:
    import argparse
    import pickle

    import torch

    from . import convert_rosinality
    from .safe_pickle import weights_only_refusal

    # rosinality's train.py stores its argparse options next to the weights; a Namespace is
    # plain data, so it is the one extra type allowed (for the refusal's list of globals too).
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ModelLoadError(path, f"refused to load the torch checkpoint: {weights_only_refusal(path)}",
                                 "nothing from the file was run") from None
        except Exception as exc:  # zip and storage errors come in many types; torch's text is long
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelLoadError(path, f"not a readable torch checkpoint ({type(exc).__name__}: "
                                 f"{shorten(first.split('. ')[0], 120)})", "the file is damaged or truncated; "
                                 "copy it again") from None
    if convert_rosinality.is_rosinality(obj):
        return convert_rosinality.convert(obj, path)
    raise ModelLoadError(
        path,
        f"a torch checkpoint holding {_summary(obj)}; no rosinality 'g_ema' generator found",
        f"accepted: {ACCEPTED}",
    )


# -- checks and messages ---------------------------------------------------------------------


def _head(path, n: int = 64):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ModelLoadError(None, f"expected a path or 'demo', got a {type(path).__name__}")
    if not os.path.exists(path):
        raise ModelLoadError(path, "no such file", f"give a model file ({ACCEPTED})")
    if os.path.isdir(path):
        raise ModelLoadError(path, "is a directory, not a model file", f"accepted: {ACCEPTED}")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(n)
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if size == 0:
        raise ModelLoadError(path, "the file is empty", f"accepted: {ACCEPTED}")
    return head, size


def _first_global_module(path, max_ops: int = 10_000):
    """Module of the first global a pickle names, read with pickletools (nothing is executed)."""
    from .safe_pickle import pickle_globals

    with open(path, "rb") as f:
        found = pickle_globals(f, max_pickles=1, max_ops=max_ops, first=True)
    return found[0][0] if found and found[0][0] != "?" else None


def _check_sizes(init_kwargs: dict, path) -> None:
    """Refuse absurd architectures before allocating them (a damaged or hostile header)."""
    limits = {"z_dim": 8192, "w_dim": 8192, "c_dim": 100_000, "img_resolution": 8192, "img_channels": 16,
              "channel_max": 8192}
    for key, top in limits.items():
        value = init_kwargs.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top):
            raise ModelLoadError(path, f"implausible architecture argument {key}={value!r}")
    layers = (init_kwargs.get("mapping_kwargs") or {}).get("num_layers")
    if layers is not None and (not isinstance(layers, int) or not 0 <= layers <= 64):
        raise ModelLoadError(path, f"implausible mapping num_layers={layers!r}")


def _check_keys(expected: dict, tensors: dict, path) -> None:
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [
        f"{k} {list(tensors[k].shape)} (expected {list(v.shape)})"
        for k, v in expected.items()
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} with the wrong shape ({_few(mismatched)})")
    if problems:
        raise ModelLoadError(path, "the weights do not fit the architecture the file describes: " + "; ".join(problems))


def _few(items, n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def _summary(obj) -> str:
    if isinstance(obj, dict):
        keys = [repr(k) for k in list(obj)[:5]]
        return f"a dict with keys {', '.join(keys) or 'none'}" + (", ..." if len(obj) > 5 else "")
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


def _describe_bytes(head: bytes, size: int) -> str:
    text = head[:16]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in text):
        return f"{size} bytes of text starting {text.decode('ascii')!r}"
    return f"{size} bytes starting {text.hex(' ')}"
