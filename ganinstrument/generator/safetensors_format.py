"""ganinstrument's own model format: a `.safetensors` file with the architecture in its header.

The tensors are the NVlabs-keyed state_dict (float32). The header's string metadata holds one
key, `ganinstrument`, whose value is JSON:

    {"format_version": 1, "kind": "sg2" | "sg3", "init_kwargs": {...NVlabs constructor args...},
     "source": "original-file-name.pkl", "notes": ["..."]}

Reading goes through `safetensors` only (a length-prefixed JSON header and raw bytes), so
nothing in the file can run.
"""

from __future__ import annotations

import json
import os

from ..common.errors import ModelLoadError
from ..common.files import write_whole
from .model_data import ModelData

META_KEY = "ganinstrument"
FORMAT_VERSION = 1


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 2 <= n <= size - 8


def read(path) -> ModelData:
    """ModelData from one of our safetensors files."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(path, f"the safetensors file is damaged or truncated ({exc})") from None
    if META_KEY not in metadata:
        raise ModelLoadError(
            path,
            f"a plain safetensors file ({len(keys)} tensors) without ganinstrument architecture metadata; "
            "the weights alone do not say how to build the network",
            "convert the original model file with `ganinstrument convert MODEL.pkl OUT.safetensors`",
        )
    try:
        info = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as exc:
        raise ModelLoadError(path, f"the ganinstrument header is not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("init_kwargs"), dict):
        raise ModelLoadError(path, "the ganinstrument header has no init_kwargs object")
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(path, f"ganinstrument format version {version!r} is not supported (this build reads 1)",
                             "update ganinstrument")
    notes = info.get("notes") if isinstance(info.get("notes"), list) else []
    return ModelData(str(info.get("kind")), info["init_kwargs"], tensors, [str(n) for n in notes])


def write(G, path, source=None, notes=()) -> None:
    """Write generator `G` (its state_dict, kind and init_kwargs) to `path` atomically."""
    from safetensors.torch import save_file

    header = {
        "format_version": FORMAT_VERSION,
        "kind": G.kind,
        "init_kwargs": G.init_kwargs,
        "source": None if source is None else os.path.basename(os.fspath(source)),
        "notes": list(notes),
    }
    tensors = {k: v.detach().to("cpu", copy=True).float().contiguous() for k, v in G.state_dict().items()}
    write_tensors(tensors, path, {META_KEY: json.dumps(header, sort_keys=True)}, save_file)


def write_tensors(tensors: dict, path, metadata: dict, save_file=None) -> None:
    """save_file into a temporary file beside `path`, then os.replace: never a half-written model."""
    from safetensors import SafetensorError

    if save_file is None:
        from safetensors.torch import save_file
    path = os.fspath(path)

    def cannot(why: str) -> ModelLoadError:
        return ModelLoadError(path, f"cannot write the model here: {why}")

    with write_whole(path, ".safetensors", cannot) as tmp:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as exc:  # its own I/O errors too, e.g. a full disk ("No space left on device")
            raise cannot(str(exc)) from None
