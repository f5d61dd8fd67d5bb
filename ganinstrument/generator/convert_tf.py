"""Legacy TensorFlow StyleGAN2 / StyleGAN2-ADA pickles -> NVlabs PyTorch kwargs and state_dict.

The pickle is a tuple (G, D, Gs) of `dnnlib.tflib.network.Network`s (read as `TFNetwork` data by
`safe_pickle`; TensorFlow is not needed). We play `Gs`, whose state holds `static_kwargs`, its
own variables (`dlatent_avg`) and the `mapping` / `synthesis` components' numpy variables.

Layout conventions (TF -> PyTorch): dense weights are [in, out] (transposed); conv weights are
[kh, kw, in, out] -> [out, in, kh, kw], with the spatial axes of the upsampling convs
(`Conv0_up`) flipped, because TF's transposed conv and PyTorch's differ in orientation;
`mod_bias` is stored without its +1; `dlatent_avg` is `w_avg`. The FIR filter buffers do not
exist in TF and are rebuilt from `resample_kernel` the way NVlabs stores them (outer product,
normalised to sum 1).
"""

from __future__ import annotations

import re

from ..common.errors import ModelLoadError
from .model_data import ModelData
from .safe_pickle import TFNetwork

_BLOCK = re.compile(r"^(\d+)x\1/(Const|Conv|Conv0_up|Conv1|ToRGB|Skip)/(\w+)$")
_LAYER_NAMES = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb", "Skip": "skip"}


def is_tf_pickle(obj) -> bool:
    """Whether an unpickled object is a TF StyleGAN pickle: a tuple of Networks, Gs last."""
    return isinstance(obj, tuple) and len(obj) >= 1 and all(isinstance(x, TFNetwork) for x in obj)


def convert(obj, path) -> ModelData:
    """The generator of a TF pickle (its `Gs`) as ModelData."""
    Gs = obj[-1]
    components = Gs.state.get("components") or {}
    mapping, synthesis = components.get("mapping"), components.get("synthesis")
    if not isinstance(mapping, TFNetwork) or not isinstance(synthesis, TFNetwork):
        raise ModelLoadError(
            path,
            f"TensorFlow network {Gs.state.get('name')!r} ({Gs.state.get('build_func_name')!r}) has no "
            "mapping/synthesis components",
            "only StyleGAN2 and StyleGAN2-ADA TensorFlow pickles are supported",
        )
    kwargs = {**(Gs.state.get("static_kwargs") or {}), **(synthesis.state.get("static_kwargs") or {})}
    _check_supported(kwargs, path)
    tensors = {}
    tensors.update(_mapping_tensors(_variables(mapping, path), path))
    own = _variables(Gs, path)
    if "dlatent_avg" in own:
        tensors["mapping.w_avg"] = _tensor(own["dlatent_avg"])
    kernel = [float(v) for v in kwargs.get("resample_kernel", [1, 3, 3, 1])]
    tensors.update(_synthesis_tensors(_variables(synthesis, path), kernel, path))
    init = _init_kwargs(kwargs, tensors, kernel)
    _check_channels(init, tensors, path)
    data = ModelData("sg2", init, tensors)
    if "mapping.w_avg" not in tensors:
        data.needs_w_avg = True
        data.notes.append("the TensorFlow pickle had no dlatent_avg; w_avg was computed from the mapping network")
    return data


def _check_supported(kwargs: dict, path) -> None:
    problems = []
    for key, want in (("nonlinearity", "lrelu"), ("mapping_nonlinearity", "lrelu"), ("fmap_decay", 1.0),
                      ("normalize_latents", True), ("use_noise", True)):
        if key in kwargs and kwargs[key] != want:
            problems.append(f"{key}={kwargs[key]!r} (only {want!r} is supported)")
    if kwargs.get("architecture", "skip") not in ("orig", "skip", "resnet"):
        problems.append(f"architecture={kwargs['architecture']!r}")
    if problems:
        raise ModelLoadError(path, "unsupported TensorFlow network options: " + ", ".join(problems))


def _variables(net: TFNetwork, path) -> dict:
    import numpy as np

    out = {}
    for item in net.state.get("variables") or []:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], np.ndarray)):
            raise ModelLoadError(path, f"TensorFlow network {net.state.get('name')!r} has a malformed variable list")
        out[str(item[0])] = item[1]
    return out


def _tensor(array):
    import numpy as np
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float32, order="C"))  # keeps 0-d shapes


def _mapping_tensors(variables: dict, path) -> dict:
    out = {}
    for name, value in variables.items():
        match = re.fullmatch(r"Dense(\d+)/(weight|bias)", name)
        if match:
            key = f"mapping.fc{match.group(1)}.{match.group(2)}"
        elif name in ("LabelConcat/weight", "LabelEmbed/weight", "LabelEmbed/bias"):
            key = "mapping.embed." + name.split("/")[1]
        else:
            raise ModelLoadError(path, f"unknown TensorFlow mapping variable {name!r}")
        out[key] = _tensor(value.T if key.endswith("weight") else value)
    if "mapping.embed.weight" in out and "mapping.embed.bias" not in out:
        import torch

        out["mapping.embed.bias"] = torch.zeros(out["mapping.embed.weight"].shape[0])  # LabelConcat has no bias
    return out


def _synthesis_tensors(variables: dict, kernel: list, path) -> dict:
    import torch

    out = {}
    resolutions = set()
    for name, value in variables.items():
        noise = re.fullmatch(r"noise(\d+)", name)
        if noise:
            idx = int(noise.group(1))
            res = 4 if idx == 0 else 2 ** ((idx + 1) // 2 + 2)
            layer = "conv1" if idx == 0 or idx % 2 == 0 else "conv0"
            out[f"synthesis.b{res}.{layer}.noise_const"] = _tensor(value.reshape(value.shape[-2:]))
            continue
        match = _BLOCK.match(name)
        if not match:
            raise ModelLoadError(path, f"unknown TensorFlow synthesis variable {name!r}",
                                 "only StyleGAN2 and StyleGAN2-ADA TensorFlow pickles are supported")
        res, layer_tf, var = int(match.group(1)), match.group(2), match.group(3)
        resolutions.add(res)
        if layer_tf == "Const":
            out[f"synthesis.b{res}.const"] = _tensor(value[0])
            continue
        prefix = f"synthesis.b{res}.{_LAYER_NAMES[layer_tf]}"
        t = _tensor(value)
        if var == "weight":
            t = t.permute(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]
            if layer_tf == "Conv0_up":
                t = t.flip([2, 3])
            out[prefix + ".weight"] = t.contiguous()
        elif var == "mod_weight":
            out[prefix + ".affine.weight"] = t.T.contiguous()
        elif var == "mod_bias":
            out[prefix + ".affine.bias"] = t + 1
        elif var in ("bias", "noise_strength"):
            out[prefix + "." + var] = t
        else:
            raise ModelLoadError(path, f"unknown TensorFlow synthesis variable {name!r}")
    f = torch.tensor(kernel, dtype=torch.float32)
    f = torch.outer(f, f)
    f = f / f.sum()
    for res in sorted(resolutions):
        out[f"synthesis.b{res}.resample_filter"] = f.clone()
        for layer in ("conv0", "conv1", "skip"):
            if f"synthesis.b{res}.{layer}.weight" in out:
                out[f"synthesis.b{res}.{layer}.resample_filter"] = f.clone()
    return out


def _check_channels(init: dict, tensors: dict, path) -> None:
    """The fmap_base/fmap_max table must give the channel counts the weights have."""
    from .channels import sg2_channels

    table = sg2_channels(init["channel_base"], init["channel_max"], init["img_resolution"])
    for res, want in table.items():
        weight = tensors.get(f"synthesis.b{res}.conv1.weight")
        if weight is not None and weight.shape[0] != want:
            raise ModelLoadError(
                path,
                f"the TensorFlow options give {want} channels at {res}x{res} but the weights have {weight.shape[0]}",
                "the network was built with options (e.g. fmap_decay, fmap_min) that are not supported",
            )


def _init_kwargs(kwargs: dict, tensors: dict, kernel: list) -> dict:
    w_dim = int(kwargs.get("dlatent_size", 512))
    c_dim = int(kwargs.get("label_size", 0))
    num_layers = sum(1 for k in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    mapping_kwargs = {"num_layers": num_layers or int(kwargs.get("mapping_layers", 8))}
    if "mapping.embed.weight" in tensors and tensors["mapping.embed.weight"].shape[0] != w_dim:
        mapping_kwargs["embed_features"] = int(tensors["mapping.embed.weight"].shape[0])
    if "mapping.fc0.weight" in tensors and num_layers > 1 and tensors["mapping.fc0.weight"].shape[0] != w_dim:
        mapping_kwargs["layer_features"] = int(tensors["mapping.fc0.weight"].shape[0])
    lrmul = kwargs.get("mapping_lrmul", 0.01)
    if lrmul != 0.01:
        mapping_kwargs["lr_multiplier"] = float(lrmul)
    init = {
        "z_dim": int(kwargs.get("latent_size", 512)),
        "c_dim": c_dim,
        "w_dim": w_dim,
        "img_resolution": int(kwargs.get("resolution", 1024)),
        "img_channels": int(kwargs.get("num_channels", 3)),
        "mapping_kwargs": mapping_kwargs,
        # TF: nf(stage) = fmap_base / 2**stage with stage = log2(res) - 1; NVlabs: channel_base / res.
        "channel_base": int(kwargs.get("fmap_base", 16 << 10)) * 2,
        "channel_max": int(kwargs.get("fmap_max", 512)),
        "num_fp16_res": int(kwargs.get("num_fp16_res", 0)),
        "conv_clamp": kwargs.get("conv_clamp"),
        "architecture": str(kwargs.get("architecture", "skip")),
    }
    if kernel != [1.0, 3.0, 3.0, 1.0]:
        init["resample_filter"] = kernel
    return init
