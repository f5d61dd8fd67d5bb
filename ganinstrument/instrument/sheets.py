"""Contact sheets: what a model's seeds and directions look like, as one labelled PNG.

- `seeds_sheet`: a grid of seeds at psi 0.7 (the first look a performer wants at a model).
- `directions_sheet`: each direction a row per seed, from -3 to +3 standard deviations.
- `layers_sheet`: one seed seen at every layer (the `view` target: each tap's activations).
- `bends_sheet`: each activation bend on one layer at a few amounts.

Every picture is drawn by an `Instrument` (the same networks, latent and truncation as on stage,
constant noise), scaled to `cell` pixels and laid out by `grid`, which labels rows and columns
with Pillow's own font. Writing is atomic: a temporary PNG beside the target, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..common.errors import GanInstrumentError
from ..common.files import write_whole

__all__ = ["DIRECTION_AMOUNTS", "SheetError", "bends_sheet", "directions_sheet", "grid", "layers_sheet", "save_png",
           "seeds_sheet"]

DIRECTION_AMOUNTS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
LABEL_PX = 14  # the labels' font size
_PAD = 4


class SheetError(GanInstrumentError):
    """A sheet that cannot be made or written (Pillow missing, a bad path)."""


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise SheetError("sheets need Pillow: pip install 'ganinstrument[preview]'") from None
    return Image, ImageDraw, ImageFont


def grid(cells: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], col_labels: Sequence[str],
         cell: int = 128, title: str = "", captions: Sequence[Sequence[str]] | None = None):
    """A PIL image: `cells[r][c]` (uint8 RGB [H, W, 3]) scaled to `cell` px wide, a label left of
    each row, one above each column, an optional title line on top, and optional `captions[r][c]`
    on each picture (on a dark band at its top)."""
    Image, ImageDraw, ImageFont = _pil()
    try:
        font = ImageFont.load_default(size=LABEL_PX)
    except TypeError:  # (Pillow < 10.1: one bitmap size)
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        left, _, right, _ = probe.textbbox((0, 0), text, font=font)
        return right - left

    first = cells[0][0]
    cell_h = max(1, round(cell * first.shape[0] / first.shape[1]))
    label_w = max([width(t) for t in row_labels] + [0]) + 2 * _PAD
    line = LABEL_PX + 2 * _PAD
    top = line * (2 if title else 1)
    cols = max(len(r) for r in cells)
    sheet = Image.new("RGB", (label_w + cols * (cell + _PAD), top + len(cells) * (cell_h + _PAD)), (16, 16, 16))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((_PAD, _PAD), title, fill=(230, 230, 230), font=font)
    for c, text in enumerate(col_labels):
        x = label_w + c * (cell + _PAD) + (cell - width(text)) // 2
        draw.text((x, top - line + _PAD), text, fill=(230, 230, 230), font=font)
    for r, row in enumerate(cells):
        y = top + r * (cell_h + _PAD)
        draw.text((_PAD, y + (cell_h - LABEL_PX) // 2), row_labels[r], fill=(230, 230, 230), font=font)
        for c, pixels in enumerate(row):
            picture = Image.fromarray(np.ascontiguousarray(pixels)).resize((cell, cell_h), Image.LANCZOS)
            x = label_w + c * (cell + _PAD)
            sheet.paste(picture, (x, y))
            if captions is not None and captions[r][c]:
                draw.rectangle((x, y, x + cell - 1, y + LABEL_PX + _PAD), fill=(16, 16, 16))
                draw.text((x + 2, y + 1), captions[r][c], fill=(230, 230, 230), font=font)
    return sheet


def save_png(image, path) -> None:
    """Write `image` to `path` (.png) whole or not at all."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise SheetError(f"{path}: a sheet is a .png")
    with write_whole(path, ".png", lambda why: SheetError(f"{path}: cannot write there ({why})")) as tmp:
        image.save(tmp, format="PNG")


def _picture(inst, values: dict[str, float]):
    for name, value in values.items():
        inst.set(name, value, immediate=True)
    return inst.render().image


def seeds_sheet(inst, seeds: Sequence[int] = range(16), psi: float = 0.7, columns: int = 4, cell: int = 128):
    """A grid of `seeds` at truncation `psi`, `columns` wide, each labelled with its seed."""
    _pil()
    pictures = [_picture(inst, {"seed": s, "psi": psi}) for s in seeds]
    rows = [pictures[i:i + columns] for i in range(0, len(pictures), columns)]
    labels = [f"seeds {seeds[i]}..{seeds[min(i + columns, len(seeds)) - 1]}" for i in range(0, len(seeds), columns)]
    return grid(rows, labels, [f"+{c}" for c in range(columns)], cell, title=f"psi {psi:g}")


def directions_sheet(inst, count: int | None = None, seeds: Sequence[int] = (0, 1, 2),
                     amounts: Sequence[float] = DIRECTION_AMOUNTS, psi: float = 0.7, cell: int = 96):
    """Each of the first `count` directions (all by default) a row per seed, from amounts[0] to
    amounts[-1] standard deviations, at truncation `psi`."""
    _pil()
    names = [n for n in inst.targets() if n.startswith("dir.")]
    names = sorted(names, key=lambda n: int(n.split(".")[1]))[:count]
    if not names:
        raise SheetError("this instrument has no directions (--directions none?)")
    rows, labels = [], []
    for name in names:
        for s in seeds:
            rows.append([_picture(inst, {"seed": s, "psi": psi, name: a}) for a in amounts])
            labels.append(f"{name} seed {s}")
        inst.set(name, 0.0, immediate=True)
    return grid(rows, labels, [f"{a:+g} sd" for a in amounts], cell, title=f"psi {psi:g}")


def layers_sheet(inst, seed: int = 0, psi: float = 0.7, columns: int = 6, cell: int = 128):
    """Seed `seed` at truncation `psi` seen at every layer, in the order the network computes
    them: the image, then each activation the `view` target can show, captioned with its name."""
    _pil()
    views = list(inst.targets()["view"].choices)
    pictures = [_picture(inst, {"seed": seed, "psi": psi, "view": i}) for i in range(len(views))]
    inst.set("view", 0, immediate=True)
    rows = [pictures[i:i + columns] for i in range(0, len(pictures), columns)]
    captions = [views[i:i + columns] for i in range(0, len(views), columns)]
    return grid(rows, [""] * len(rows), [""] * columns, cell, title=f"seed {seed}, psi {psi:g}: every layer",
                captions=captions)


def bends_sheet(inst, layer: str | None = None, seed: int = 0, psi: float = 0.7,
                shares: Sequence[float] = (0.0, 0.25, 0.5, 1.0), cell: int = 96):
    """Each activation bend (a row) on `layer` (default: the middle bendable one) at `shares` of
    the way from its neutral value to the far end of its range, seed `seed` at truncation `psi`."""
    from ..scene.activation_bends import NEUTRAL, RANGES, TRANSFORMS

    _pil()
    layers = [name for name, _ in inst.scene.activations.layers]
    if layer is None:
        layer = layers[len(layers) // 2]
    elif layer not in layers:
        raise SheetError(f"no bendable layer {layer!r}; the layers: {', '.join(layers)}")
    rows, labels = [], []
    for t in TRANSFORMS:
        lo, hi = RANGES[t]
        far = hi if hi != NEUTRAL[t] else lo
        key = f"bend.{layer}.{t}"
        amounts = [NEUTRAL[t] + f * (far - NEUTRAL[t]) for f in shares]
        rows.append([_picture(inst, {"seed": seed, "psi": psi, key: a}) for a in amounts])
        labels.append(f"{t} {amounts[1]:g}..{amounts[-1]:g}")
        inst.set(key, NEUTRAL[t], immediate=True)
    return grid(rows, labels, [f"{f:g} of the way" for f in shares], cell,
                title=f"{layer}: every bend, seed {seed}, psi {psi:g}")
