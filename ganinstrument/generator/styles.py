"""Which row of ws drives which style affine, in our StyleGAN2 and StyleGAN3 synthesis networks.

Every modulated layer turns one row of ws [N, num_ws, w_dim] into per-channel styles through its
`affine` (a fully connected layer, w_dim -> the layer's input channels). Closed-form
factorization (scene/sefa.py) reads those weights, and a direction's layer range ("coarse",
"4-7") is a range of ws rows; both need the map from row to layers:

- StyleGAN2: block by block from 4x4, each block's convolutions take the next rows (conv0, then
  conv1) and its ToRGB the row after its last convolution (shared with the next block's conv0);
  the last ToRGB alone takes the last row.
- StyleGAN3: row 0 drives the input's Fourier-feature transform (rotation and translation: not
  a style), rows 1.. the layers in order; the last layer is ToRGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LAYER_RANGES", "LayerRangeError", "StyleLayer", "layer_range", "style_layers"]

# Coarse / middle / fine, as in the StyleGAN papers for 18 rows (1024 px): rows 0-3 (4..8 px),
# 4-7 (16..32 px), 8.. (64 px and up); other networks by the same shares of their rows.
LAYER_RANGES = ("all", "coarse", "middle", "fine")
_COARSE_END, _MIDDLE_END = 4 / 18, 8 / 18


@dataclass(frozen=True)
class StyleLayer:
    """One modulated layer: the ws row it reads, its module path, what it is ("conv", "torgb" or
    "input"), its affine's weight [channels, w_dim] as stored (its gain is one scalar), and the
    layer module itself."""

    ws_index: int
    name: str
    kind: str
    weight: torch.Tensor
    module: torch.nn.Module


class LayerRangeError(ValueError):
    """A layer range that names no rows of this network."""


def style_layers(G) -> list[StyleLayer]:
    """The modulated layers of generator `G` (or its synthesis network), in the order it runs them."""
    synthesis = getattr(G, "synthesis", G)
    out: list[StyleLayer] = []
    if hasattr(synthesis, "block_names"):  # StyleGAN2
        row = 0
        for block_name in synthesis.block_names():
            block = getattr(synthesis, block_name)
            convs = [n for n in ("conv0", "conv1") if hasattr(block, n)]
            for i, conv in enumerate(convs):
                layer = getattr(block, conv)
                out.append(StyleLayer(row + i, f"synthesis.{block_name}.{conv}", "conv", layer.affine.weight, layer))
            if block.num_torgb:
                out.append(StyleLayer(row + block.num_conv, f"synthesis.{block_name}.torgb", "torgb",
                                      block.torgb.affine.weight, block.torgb))
            row += block.num_conv
        return out
    out.append(StyleLayer(0, "synthesis.input", "input", synthesis.input.affine.weight, synthesis.input))  # StyleGAN3
    for i, layer_name in enumerate(synthesis.layer_names()[1:]):
        layer = getattr(synthesis, layer_name)
        out.append(StyleLayer(i + 1, f"synthesis.{layer_name}", "torgb" if layer.is_torgb else "conv",
                              layer.affine.weight, layer))
    return out


def layer_range(spec: str, num_ws: int) -> tuple[int, int]:
    """Rows [start, end) of ws named by `spec`: "all", "coarse", "middle", "fine", or "A-B" (rows
    A to B, both included, counted from 0) or "A" (one row)."""
    text = str(spec).strip().lower()
    coarse_end = max(1, round(num_ws * _COARSE_END))
    middle_end = max(coarse_end + 1, round(num_ws * _MIDDLE_END))
    named = {"all": (0, num_ws), "coarse": (0, coarse_end), "middle": (coarse_end, middle_end),
             "fine": (middle_end, num_ws)}
    if text in named:
        start, end = named[text]
    else:
        first, dash, last = text.partition("-")
        try:
            start = int(first)
            end = (int(last) if dash else start) + 1
        except ValueError:
            raise LayerRangeError(f"layer range {spec!r}: expected {', '.join(LAYER_RANGES)}, "
                                  f"or rows A-B (0..{num_ws - 1})") from None
    if not 0 <= start < end <= num_ws:
        raise LayerRangeError(f"layer range {spec!r}: this network has ws rows 0..{num_ws - 1}")
    return start, end
