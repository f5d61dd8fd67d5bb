"""rosinality/stylegan2-pytorch checkpoints (`.pt`) -> NVlabs StyleGAN2 kwargs and state_dict.

The checkpoint is read with `torch.load(weights_only=True)` by the loader; here we only rename
and reshape. rosinality stores the same values NVlabs PyTorch does (equalised-lr weights,
effective modulation bias, already-flipped upsampling kernels), so no value changes are needed:
`style.{i+1}` -> `mapping.fc{i}`, `conv1`/`convs.{2k}`/`convs.{2k+1}` -> `b4.conv1`/`bR.conv0`/
`bR.conv1`, `to_rgb1`/`to_rgbs.{k}` -> `b4.torgb`/`bR.torgb`, `noises.noise_i` ->
`noise_const`. The architecture is read from tensor shapes; rosinality has no activation clamp,
so the network is built with `conv_clamp=None`.
"""

from __future__ import annotations

import re

from ..common.errors import ModelLoadError
from .channels import fit_channel_params
from .model_data import ModelData


def is_rosinality(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("g_ema"), dict) and "style.1.weight" in obj["g_ema"]


def convert(obj: dict, path) -> ModelData:
    g = obj["g_ema"]
    out = {}
    notes = []
    num_mapping = 0
    for key, value in g.items():
        new = _rename(key)
        if new is None:
            continue
        if new == "":
            raise ModelLoadError(path, f"unexpected tensor {key!r} in the rosinality generator",
                                 "only rosinality StyleGAN2 generators are supported")
        out[new] = _reshape(new, value.float())
        num_mapping += bool(re.fullmatch(r"mapping\.fc\d+\.weight", new))
    if "synthesis.b4.const" not in out:
        raise ModelLoadError(path, "the rosinality generator has no constant input ('input.input')")
    table = {4: int(out["synthesis.b4.const"].shape[0])}
    k = 0
    while f"convs.{2 * k}.conv.weight" in g:
        table[8 * 2**k] = int(g[f"convs.{2 * k}.conv.weight"].shape[1])
        k += 1
    resolution = max(table)
    fitted = fit_channel_params(table)
    if fitted is None:
        raise ModelLoadError(
            path,
            f"the channel counts per resolution {table} cannot be expressed by NVlabs "
            "channel_base/channel_max (min(channel_base // res, channel_max))",
            "this network's layer widths are not supported",
        )
    w_dim = int(out["mapping.fc0.weight"].shape[0])
    init = {
        "z_dim": int(out["mapping.fc0.weight"].shape[1]),
        "c_dim": 0,
        "w_dim": w_dim,
        "img_resolution": resolution,
        "img_channels": int(out["synthesis.b4.torgb.weight"].shape[0]),
        "mapping_kwargs": {"num_layers": num_mapping},
        "channel_base": fitted[0],
        "channel_max": fitted[1],
        "num_fp16_res": 0,
        "conv_clamp": None,
        "architecture": "skip",
    }
    _add_filters(g, out, init, table, path)
    latent_avg = obj.get("latent_avg")
    data = ModelData("sg2", init, out, notes)
    if latent_avg is not None and hasattr(latent_avg, "numel") and latent_avg.numel() == w_dim:
        out["mapping.w_avg"] = latent_avg.float().reshape(w_dim).clone()
    else:
        import torch

        out["mapping.w_avg"] = torch.zeros(w_dim)
        data.needs_w_avg = True
        notes.append("the checkpoint has no latent_avg; w_avg was computed as the mean mapping output of random z")
    return data


def _rename(key: str) -> str | None:
    """NVlabs key for a rosinality key; None to drop (FIR kernels), "" if unknown."""
    if key.endswith((".blur.kernel", ".upsample.kernel")):
        return None
    m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", key)
    if m:
        return f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"
    if key == "input.input":
        return "synthesis.b4.const"
    m = re.fullmatch(r"noises\.noise_(\d+)", key)
    if m:
        i = int(m.group(1))
        res = 4 if i == 0 else 2 ** ((i + 1) // 2 + 2)
        return f"synthesis.b{res}.{'conv0' if i % 2 else 'conv1'}.noise_const"
    m = re.fullmatch(r"(conv1|convs\.(\d+)|to_rgb1|to_rgbs\.(\d+))\.(.+)", key)
    if not m:
        return ""
    if m.group(1) == "conv1":
        layer = "synthesis.b4.conv1"
    elif m.group(2) is not None:
        i = int(m.group(2))
        layer = f"synthesis.b{8 * 2 ** (i // 2)}.{'conv1' if i % 2 else 'conv0'}"
    elif m.group(1) == "to_rgb1":
        layer = "synthesis.b4.torgb"
    else:
        layer = f"synthesis.b{8 * 2 ** int(m.group(3))}.torgb"
    inner = {
        "conv.weight": "weight",
        "conv.modulation.weight": "affine.weight",
        "conv.modulation.bias": "affine.bias",
        "noise.weight": "noise_strength",
        "activate.bias": "bias",
        "bias": "bias",
    }.get(m.group(4))
    return f"{layer}.{inner}" if inner else ""


def _reshape(key: str, t):
    if key == "synthesis.b4.const" or key.endswith(".weight") and t.dim() == 5:
        return t[0].clone()  # [1, C, 4, 4] -> [C, 4, 4]; [1, out, in, k, k] -> [out, in, k, k]
    if key.endswith("noise_strength"):
        return t.reshape(()).clone()
    if key.endswith("noise_const"):
        return t.reshape(t.shape[-2:]).clone()
    if key.endswith("torgb.bias"):
        return t.reshape(-1).clone()
    return t.clone()


def _add_filters(g: dict, out: dict, init: dict, table: dict, path) -> None:
    """NVlabs `resample_filter` buffers (normalised FIR) from rosinality's blur kernels (x4)."""
    import torch

    kernel = next((v for k, v in g.items() if k.endswith(".blur.kernel")), None)
    default = torch.tensor([1.0, 3.0, 3.0, 1.0])
    default = torch.outer(default, default) / 64
    f = default if kernel is None else kernel.float() / kernel.float().sum()
    if f.shape != (4, 4) or not torch.allclose(f, default):
        taps = f.sum(dim=1)
        if not torch.allclose(torch.outer(taps, taps), f, atol=1e-6):
            raise ModelLoadError(path, "the rosinality blur kernel is not separable; not supported")
        init["resample_filter"] = [float(x) for x in taps / taps.max()]
    else:
        f = default
    for res in table:
        out[f"synthesis.b{res}.resample_filter"] = f.clone()
        for layer in ("conv0", "conv1"):
            if f"synthesis.b{res}.{layer}.weight" in out:
                out[f"synthesis.b{res}.{layer}.resample_filter"] = f.clone()
