"""Reading NVlabs network pickles without running anything they contain.

A pickle is a small program: every GLOBAL names a callable that the loader imports and calls.
`SafeUnpickler.find_class` therefore never imports anything. It answers only from `_ALLOWED`, a
table of (module, name) -> our own stand-in, and rejects every other global with a
`ModelLoadError` that names the file and the global. The stand-ins only build plain data:

- `torch_utils.persistence._reconstruct_persistent_obj(meta)` -> `PersistentObject(meta)` (the
  embedded module source is kept as text and never compiled);
- `dnnlib.util.EasyDict` -> `EasyDict` (a dict);
- `dnnlib.tflib.network.Network` (TensorFlow pickles) -> `TFNetwork`, which keeps its state dict;
- torch tensors: plain `pickle` reduces a storage through `torch.storage._load_from_bytes`, which
  calls `torch.load` on embedded bytes with `weights_only=False`. We substitute `_load_storage`,
  which reads those bytes with `torch.load(..., weights_only=True)`;
- numpy arrays, dtypes and scalars, refusing object dtypes (those would hold pickled objects).

Persistent ids are not part of any format we read, so `persistent_load` refuses them.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import warnings

from ..common.errors import ModelLoadError
from ..common.text import shorten


class _Sealed(type):
    """Metaclass of the stand-in classes: a pickle's BUILD opcode cannot set class attributes."""

    def __setattr__(cls, name, value):
        raise _BadStructure(f"the pickle tried to modify {cls.__name__}.{name}")


class _Guarded:
    """A stand-in callable handed to the unpickler; BUILD on it is refused (no attribute writes)."""

    __slots__ = ("_fn",)

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, *args):
        return self._fn(*args)

    def __setstate__(self, state):
        raise _BadStructure("the pickle tried to modify a loader function")


class PersistentObject(metaclass=_Sealed):
    """What `torch_utils.persistence` would rebuild: the class description and its state.

    `meta` holds `type` ('class'), `version`, `module_src` (text, never executed),
    `class_name` and `state` (the pickled `__dict__` of the module).
    """

    def __init__(self, meta):
        if not isinstance(meta, dict):
            raise _BadStructure(f"persistent object meta is a {type(meta).__name__}, not a dict")
        self.meta = meta

    def __setstate__(self, state):
        raise _BadStructure("the pickle tried to modify a persistent object after creating it")

    @property
    def class_name(self) -> str:
        return str(self.meta.get("class_name", ""))

    @property
    def state(self) -> dict:
        state = self.meta.get("state")
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


class EasyDict(dict, metaclass=_Sealed):
    """Stand-in for `dnnlib.util.EasyDict`: a dict (attribute access is not needed here)."""


class TFNetwork(metaclass=_Sealed):
    """Stand-in for `dnnlib.tflib.network.Network`: keeps the pickled state as data."""

    state: dict = {}  # replaced (never mutated) by __setstate__; NEWOBJ skips __init__

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise _BadStructure("TensorFlow Network state is not a dict")
        self.state = state


class _BadStructure(Exception):
    """Raised by stand-ins when the pickled data is not shaped like a network pickle."""


class _ArrayBuilder(metaclass=_Sealed):
    """Stand-in for the ndarray that `numpy.core.multiarray._reconstruct` returns.

    The following BUILD opcode calls `__setstate__((version, shape, dtype, fortran, data))`;
    we build the array from the raw bytes with `np.frombuffer` and refuse object dtypes.
    `unwrap` then replaces the builder by the finished array.
    """

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        import numpy as np

        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _BadStructure("numpy array state has an unexpected layout")
        shape, dtype, fortran, data = state[-4:]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise _BadStructure("numpy array with an object dtype (it would hold pickled objects)")
        if not isinstance(data, (bytes, bytearray)):
            raise _BadStructure("numpy array data is not raw bytes")
        count = 1
        for n in shape:
            count *= int(n)
        array = np.frombuffer(bytes(data), dtype=dtype, count=count)
        self.array = array.reshape(shape, order="F" if fortran else "C").copy()


def _np_reconstruct(subtype, shape, typecode):
    return _ArrayBuilder()


def _np_dtype(name, align=False, copy=True):
    import numpy as np

    dtype = np.dtype(name)
    if dtype.hasobject:
        raise _BadStructure("numpy object dtype (it would hold pickled objects)")
    return dtype


def _np_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _BadStructure("numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _load_storage(data):
    """Replacement for `torch.storage._load_from_bytes`: the same bytes, read weights-only."""
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise _BadStructure("embedded tensor storage is not bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except Exception:  # the weights-only reader refused or could not parse the bytes
        raise _BadStructure(f"an embedded tensor storage was refused by the weights-only reader: "
                            f"{weights_only_refusal(data)}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _BadStructure(f"embedded storage holds a {type(storage).__name__}, not a tensor storage")
    return storage


def weights_only_refusal(source) -> str:
    """Why `torch.load(source, weights_only=True)` refused `source` (a path or the bytes), in
    words for the performer, naming the Python global(s) it would have had to import.

    The names come from `torch.serialization.get_unsafe_globals_in_checkpoint` (the zip format
    every torch.save since 1.6 writes), or, for the old single-stream format that call does not
    read, from the pickle's own GLOBAL opcodes (pickletools; nothing is executed). Torch's own
    message is not used: its wording changes between releases and it advises
    `weights_only=False`, which is exactly what must not be done with an unknown file.
    """
    names = refused_globals(source)
    if not names:
        return "it holds Python objects that are not plain tensor data"
    shown = ", ".join(shorten(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"it references {shown}, which {'is' if len(names) == 1 else 'are'} not plain tensor data"


# Globals that plain tensor data is made of in the old torch.save format; what else the
# pickle names is what the weights-only reader refused.
_PLAIN_OLD_FORMAT = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set",
                     "builtins.frozenset", "builtins.bytearray", "builtins.complex", "builtins.slice")


def refused_globals(source) -> list[str]:
    """The globals ("module.name") in a torch checkpoint that weights-only loading refuses."""
    import torch

    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else None
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(stream or os.fspath(source)))
    except Exception:  # not the zip format (or not readable): look at the pickle opcodes
        pass
    try:
        with (stream or open(source, "rb")) as f:
            f.seek(0)
            found = [f"{module}.{name}" for module, name in pickle_globals(f)]
    except OSError:
        return []
    return [g for g in dict.fromkeys(found) if not g.startswith(_PLAIN_OLD_FORMAT)]


def pickle_globals(f, max_pickles: int = 4, max_ops: int = 1_000_000, first: bool = False) -> list[tuple[str, str]]:
    """(module, name) of every global the first pickles in a stream name, read with pickletools
    (nothing is executed); the old torch.save writes 4 pickles in a row. `first`: stop at one."""
    import pickletools

    found, ops = [], 0
    for _ in range(max_pickles):
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(f):
                ops += 1
                if op.name in ("GLOBAL", "INST"):
                    module, _, name = str(arg).partition(" ")
                    found.append((module, name))
                elif op.name == "STACK_GLOBAL":
                    found.append((strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?"))
                elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings.append(str(arg))
                if (first and found) or ops > max_ops:
                    return found
        except Exception:  # damaged, or the raw storage bytes after the pickles
            return found
    return found


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(storage, torch.TypedStorage):
            dtype, untyped = storage.dtype, storage._untyped_storage
        elif isinstance(storage, torch.UntypedStorage):
            dtype, untyped = torch.uint8, storage
        else:
            raise _BadStructure("tensor without a storage")
        tensor = torch.empty((0,), dtype=dtype)
        try:
            tensor.set_(untyped, int(offset), tuple(size), tuple(stride))
        except (RuntimeError, TypeError, ValueError) as exc:
            raise _BadStructure(f"tensor does not fit its storage: {exc}") from None
    return tensor


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    import torch

    if not isinstance(data, torch.Tensor):
        raise _BadStructure("parameter without tensor data")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    func = getattr(func, "_fn", None)
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise _BadStructure("tensor subclass rebuilt through an unexpected function")
    return func(*args)


def _persistent(meta):
    return PersistentObject(meta)


def _ordered_dict(*args):
    if args:
        raise _BadStructure("OrderedDict built with arguments")
    return collections.OrderedDict()


_ALLOWED = {
    ("collections", "OrderedDict"): lambda: _ordered_dict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _persistent,
    ("dnnlib.util", "EasyDict"): lambda: EasyDict,
    ("dnnlib.tflib.network", "Network"): lambda: TFNetwork,
    ("torch.storage", "_load_from_bytes"): lambda: _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): lambda: _rebuild_from_type_v2,
    ("torch", "Tensor"): lambda: "torch.Tensor",  # only ever an argument of _rebuild_from_type_v2
    ("torch.nn.parameter", "Parameter"): lambda: "torch.nn.Parameter",
    ("numpy", "dtype"): lambda: _np_dtype,
    ("numpy", "ndarray"): lambda: "ndarray",
    ("numpy.core.multiarray", "_reconstruct"): lambda: _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): lambda: _np_scalar,
    ("numpy._core.multiarray", "scalar"): lambda: _np_scalar,
}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves globals only through `_ALLOWED` and refuses persistent ids."""

    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise ModelLoadError(
                self._path,
                f"refused to load: the pickle references {module}.{name}, which is not part of a network pickle",
                "nothing from the file was run; if this is a genuine model, convert it where you trust it",
            )
        found = factory()
        if callable(found) and not isinstance(found, type):
            found = _Guarded(found)
        return found

    def persistent_load(self, pid):
        raise ModelLoadError(self._path, "refused to load: the pickle uses persistent ids, which network pickles do not")


def unwrap(obj, _seen=None):
    """Replace `_ArrayBuilder`s by their arrays, in dicts, lists and tuples (recursively)."""
    if _seen is None:
        _seen = {}
    key = id(obj)
    if key in _seen:
        return _seen[key]
    if isinstance(obj, _ArrayBuilder):
        if obj.array is None:
            raise _BadStructure("numpy array without data")
        out = obj.array
    elif isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, EasyDict, collections.OrderedDict) else {}
        _seen[key] = out
        for k, v in obj.items():
            out[k] = unwrap(v, _seen)
    elif isinstance(obj, (list, tuple)):
        items = [unwrap(v, _seen) for v in obj]
        out = items if isinstance(obj, list) else tuple(items)
    elif isinstance(obj, TFNetwork):
        _seen[key] = obj
        obj.state = unwrap(obj.state, _seen)
        out = obj
    elif isinstance(obj, PersistentObject):
        _seen[key] = obj
        obj.meta = unwrap(obj.meta, _seen)
        out = obj
    else:
        out = obj
    _seen[key] = out
    return out


MEMO_SLACK = 1 << 16  # how far past the objects made so far a memo index may point


def check_memo(path, data: bytes) -> None:
    """Refuse a pickle whose memo indices run ahead of the objects it has made. Python's own
    pickler numbers them 0, 1, 2, ...; a forged index (LONG_BINPUT 1163280727) makes the C
    unpickler grow its memo table to that size first: 22 GB for one changed 4-byte word in a
    1 MB file. Read with pickletools (nothing runs): ~12 ms for a 1 MB network pickle."""
    import pickletools

    made = 0
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if op.name == "MEMOIZE":
                made += 1
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                made += 1
                if int(arg) > made + MEMO_SLACK:
                    raise ModelLoadError(path, f"the pickle is damaged: it files an object under number "
                                         f"{int(arg)} after making {made}")
    except ModelLoadError:
        raise
    except Exception:  # damaged elsewhere: the unpickler says how
        return


def safe_load(path, data: bytes):
    """Unpickle `data` (the content of `path`) with `SafeUnpickler`; every failure is a ModelLoadError."""
    check_memo(path, data)
    try:
        obj = SafeUnpickler(io.BytesIO(data), path).load()
        return unwrap(obj)
    except ModelLoadError:
        raise
    except _BadStructure as exc:
        raise ModelLoadError(path, f"not a valid network pickle: {exc}") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise ModelLoadError(path, f"the pickle is damaged or truncated ({exc or 'unexpected end of file'})") from None
    except RecursionError:
        raise ModelLoadError(path, "the pickle is nested too deeply to be a network pickle") from None
    except Exception as exc:  # any other failure inside the pickle machine means a malformed file
        raise ModelLoadError(path, f"could not read the pickle: {type(exc).__name__}: {exc}") from None
