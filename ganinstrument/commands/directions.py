"""`ganinstrument directions MODEL`: find a model's directions and write them to a file; and the
`--directions auto|FILE|none` option that perform, render, targets and check share.

SeFa (scene/sefa.py) reads the weights only: no sampling, a fraction of a second even for 1024 px
networks. The file (`--out`, `.npz`) holds the directions with the ws rows they move and their
eigenvalues; `perform --directions FILE` plays it, and an `.npy` (every row) is GANSpace's own
layout, for other tools.
"""

from __future__ import annotations

import logging

import numpy as np

from ..common.errors import GanInstrumentError

log = logging.getLogger(__name__)

DEFAULT_COUNT = 8


def add_directions_option(p, default: str | None = "auto") -> None:
    p.add_argument("--directions", default=default, metavar="auto|FILE|none",
                   help="dir.* targets: 'auto' finds them in the model (SeFa: a few each for the coarse, "
                        "middle and fine layers), or a .npz/.npy directions file, or 'none'"
                        + (" (default: auto)" if default == "auto" else ""))


def directions_arg(value: str | None):
    """--directions' value as the instrument takes it: "auto", a path, or None (none)."""
    if value is None or value.strip().lower() == "none":
        return None
    return "auto" if value.strip().lower() == "auto" else value


def add_directions_parser(sub) -> None:
    p = sub.add_parser("directions", help="find a model's directions (SeFa) and write them to a file")
    p.add_argument("model", help="a model file (.pkl, .pt, .safetensors) or 'demo'")
    p.add_argument("--method", default="sefa", choices=["sefa"],
                   help="sefa: closed-form factorization of the style weights (Shen & Zhou 2021)")
    p.add_argument("--layers", default="all", help="the ws rows the directions are found for and move: all, "
                   "coarse, middle, fine, or A-B (rows A to B, from 0; `ganinstrument info` lists them)")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"how many (default {DEFAULT_COUNT})")
    p.add_argument("--out", default=None, help="write them here: .npz (with their rows) or .npy (every row only)")
    p.set_defaults(func=run_directions)


def run_directions(args) -> int:
    from ..generator import load_generator
    from ..generator.styles import LayerRangeError
    from ..scene.directions import DirectionSet, save_direction_set
    from ..scene.sefa import sefa

    if args.count < 1:
        raise GanInstrumentError(f"--count {args.count}: at least 1")
    G = load_generator(args.model, device="cpu")
    try:
        found = sefa(G, args.layers, count=args.count)
    except (LayerRangeError, ValueError) as exc:
        raise GanInstrumentError(f"--layers {args.layers}: {exc}") from None
    start, end = found.layers
    share = found.eigenvalues / max(found.total, 1e-30)
    print(f"{args.model}: {len(found.directions)} SeFa directions for ws rows {start}..{end - 1} "
          f"(of 0..{G.num_ws - 1})")
    print(f"{'dir':>5} {'eigenvalue':>11} {'share':>7}")
    for k, (value, part) in enumerate(zip(found.eigenvalues, share)):
        print(f"{k:>5} {value:>11.4g} {part:>6.1%}")
    if args.out:
        rows = np.tile([start, end], (len(found.directions), 1))
        save_direction_set(args.out, DirectionSet(found.directions.astype(np.float64), rows, "w", "SeFa"),
                           eigenvalues=found.eigenvalues.astype(np.float32), method=np.array("sefa"))
        print(f"wrote {args.out} (play it: perform --directions {args.out})")
    return 0

