"""A plain description of a generator: what `ganinstrument info` prints.

The group names listed here (StyleGAN2 blocks `b4`..`b1024`, StyleGAN3 layers `input`,
`L0_36_512`..`L14_1024_3`) are the names that layer edits and network blends use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SG3_LAYER = re.compile(r"^L(\d+)_(\d+)_(\d+)$")


@dataclass(frozen=True)
class GroupInfo:
    name: str  # "b64", "L6_148_362", "input", "mapping"
    out_shape: tuple[int, ...]  # (C, H, W) of the group's feature output; () when not spatial
    num_params: int
    tensors: tuple[tuple[str, tuple[int, ...]], ...] = field(default=())


@dataclass(frozen=True)
class ModelInfo:
    kind: str
    img_resolution: int
    img_channels: int
    z_dim: int
    w_dim: int
    c_dim: int
    num_ws: int
    num_params: int
    groups: tuple[GroupInfo, ...]
    init_kwargs: dict


def _group_of(key: str) -> str:
    parts = key.split(".")
    return parts[1] if parts[0] == "synthesis" and len(parts) > 2 else parts[0]


def _out_shape(G, group: str, tensors: dict) -> tuple[int, ...]:
    if G.kind == "sg2" and group.startswith("b") and group[1:].isdigit():
        res = int(group[1:])
        conv = tensors.get(f"synthesis.{group}.conv1.weight")
        return (int(conv.shape[0]), res, res) if conv is not None else ()
    match = _SG3_LAYER.match(group)
    if match:
        size, ch = int(match.group(2)), int(match.group(3))
        return (ch, size, size)
    if group == "input":
        first = next((g for g in G.synthesis.layer_names() if _SG3_LAYER.match(g)), None)
        weight = tensors.get("synthesis.input.weight")
        if first is not None and weight is not None:
            size = int(_SG3_LAYER.match(first).group(2))
            return (int(weight.shape[0]), size, size)
    return ()


def describe(G) -> ModelInfo:
    """Describe `G` without running it: kind, dims and each synthesis group's tensors."""
    state = G.state_dict()
    params = dict(G.named_parameters())
    order: list[str] = []
    members: dict[str, list[str]] = {}
    for key in state:
        group = _group_of(key)
        if group not in members:
            members[group] = []
            order.append(group)
        members[group].append(key)
    groups = []
    for group in order:
        keys = members[group]
        count = sum(params[k].numel() for k in keys if k in params)
        groups.append(
            GroupInfo(
                name=group,
                out_shape=_out_shape(G, group, state),
                num_params=count,
                tensors=tuple((k, tuple(state[k].shape)) for k in keys),
            )
        )
    return ModelInfo(
        kind=G.kind,
        img_resolution=G.img_resolution,
        img_channels=G.img_channels,
        z_dim=G.z_dim,
        w_dim=G.w_dim,
        c_dim=G.c_dim,
        num_ws=G.num_ws,
        num_params=sum(p.numel() for p in G.parameters()),
        groups=tuple(groups),
        init_kwargs=dict(G.init_kwargs),
    )


def format_info(info: ModelInfo, *, source: str = "", verbose: bool = False) -> str:
    """Human-readable text for `ganinstrument info`."""
    kind_name = {"sg2": "StyleGAN2", "sg3": "StyleGAN3"}.get(info.kind, info.kind)
    lines = []
    if source:
        lines.append(f"model       {source}")
    lines += [
        f"kind        {info.kind} ({kind_name})",
        f"resolution  {info.img_resolution}x{info.img_resolution}, {info.img_channels} channels",
        f"z_dim {info.z_dim}   w_dim {info.w_dim}   c_dim {info.c_dim}   num_ws {info.num_ws}",
        f"parameters  {info.num_params:,}",
        "",
        "groups (names for layer edits and network blends):",
        f"  {'name':<16} {'output [C, H, W]':<20} {'parameters':>12}",
    ]
    for g in info.groups:
        shape = "[" + ", ".join(str(s) for s in g.out_shape) + "]" if g.out_shape else "-"
        lines.append(f"  {g.name:<16} {shape:<20} {g.num_params:>12,}")
        if verbose:
            for key, shp in g.tensors:
                lines.append(f"      {key:<48} {list(shp)}")
    return "\n".join(lines)
