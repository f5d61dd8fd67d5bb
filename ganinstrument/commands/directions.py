"""`ganinstrument directions MODEL`: find a model's directions and write them to a file; and the
`--directions auto|FILE|none` option that perform, render, targets and check share.

SeFa (scene/sefa.py) reads the weights only: no sampling, a fraction of a second even for 1024 px
networks. GANSpace (scene/ganspace.py) samples w through the mapping network (a progress bar on
stderr). The file (`--out`, `.npz`) holds the directions with the ws rows they move, their
eigenvalues (SeFa) or variances (GANSpace) and shares, and the method; `perform --directions
FILE` plays it, and an `.npy` (every row) is GANSpace's own layout, for other tools.
"""

from __future__ import annotations

import logging

import numpy as np

from ..common.errors import GanInstrumentError
from ..common.files import refuse_unwritable

log = logging.getLogger(__name__)

DEFAULT_COUNT = 8
DEFAULT_SAMPLES = 100_000
MAX_SAMPLES = 10_000_000


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
    p = sub.add_parser("directions", help="find a model's directions (SeFa or GANSpace) and write them to a file")
    p.add_argument("model", help="a model file (.pkl, .pt, .safetensors) or 'demo'")
    p.add_argument("--method", default="sefa", choices=["sefa", "ganspace"],
                   help="sefa: closed-form factorization of the style weights (Shen & Zhou 2021), instant; "
                        "ganspace: principal components of sampled w (Härkönen et al. 2020)")
    p.add_argument("--layers", default="all", help="the ws rows the directions move (and, for sefa, are found "
                   "for): all, coarse, middle, fine, or A-B (rows A to B, from 0)")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"how many (default {DEFAULT_COUNT})")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"ganspace: w sampled (default {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="ganspace: the samples' seed (default 0)")
    p.add_argument("--out", default=None, help="write them here: .npz (with their rows) or .npy (every row only)")
    p.add_argument("--sheet", default=None, metavar="PNG",
                   help="draw them: each direction a row per seed, -3 to +3 standard deviations")
    p.set_defaults(func=run_directions)


def run_directions(args) -> int:
    from ..generator import load_generator
    from ..generator.styles import LayerRangeError, layer_range
    from ..scene.directions import DirectionSet, save_direction_set

    if args.count < 1:
        raise GanInstrumentError(f"--count {args.count}: at least 1")
    if args.method == "ganspace" and not 2 <= args.samples <= MAX_SAMPLES:
        raise GanInstrumentError(f"--samples {args.samples}: 2 .. {MAX_SAMPLES}")
    if args.out and not args.out.endswith((".npz", ".npy")):
        raise GanInstrumentError(f"--out {args.out}: name the file .npz (directions and their rows) or .npy")
    if args.sheet and not args.sheet.lower().endswith(".png"):
        raise GanInstrumentError(f"--sheet {args.sheet}: a sheet is a .png")
    refuse_unwritable(("--out", args.out), ("--sheet", args.sheet))
    G = load_generator(args.model, device="cpu")
    try:
        start, end = layer_range(args.layers, int(G.num_ws))
    except LayerRangeError as exc:
        raise GanInstrumentError(f"--layers {args.layers}: {exc}") from None
    if args.out and args.out.endswith(".npy") and (start, end) != (0, int(G.num_ws)):
        raise GanInstrumentError(f"--out {args.out}: an .npy moves every row, and --layers {args.layers} is rows "
                                 f"{start}..{end - 1}: write an .npz")
    if args.count > G.w_dim:
        print(f"--count {args.count}: w has {G.w_dim} dimensions, so there are at most {G.w_dim} directions")
    if args.method == "sefa":
        from ..scene.sefa import sefa

        found = sefa(G, args.layers, count=args.count)
        vectors, values, share = found.directions, found.eigenvalues, found.eigenvalues / max(found.total, 1e-30)
        what, column = f"SeFa directions for ws rows {start}..{end - 1}", "eigenvalue"
    else:
        from ..scene.ganspace import ganspace
        from .progress import Progress

        progress = Progress(args.samples, unit="samples of w")
        found = ganspace(G, args.samples, count=args.count, seed=args.seed, on_progress=progress.update)
        vectors, values, share = found.directions, found.variances, found.explained
        what, column = f"GANSpace components of {args.samples} w (seed {args.seed}), on ws rows {start}..{end - 1}", \
            "variance"
    print(f"{args.model}: {len(vectors)} {what} (of 0..{G.num_ws - 1})")
    print(f"{'dir':>5} {column:>11} {'share':>7}")
    for k, (value, part) in enumerate(zip(values, share)):
        print(f"{k:>5} {value:>11.4g} {part:>6.1%}")
    found = DirectionSet(vectors.astype(np.float64), np.tile([start, end], (len(vectors), 1)), "w", args.method)
    if args.out:
        extra = dict(eigenvalues=values.astype(np.float32), share=share.astype(np.float32),
                     method=np.array(args.method))
        save_direction_set(args.out, found, **extra)
        print(f"wrote {args.out} (play it: perform --directions {args.out})")
    if args.sheet:
        from ..instrument.facade import Instrument
        from ..instrument.sheets import directions_sheet, save_png

        save_png(directions_sheet(Instrument(G, device="cpu", directions=found)), args.sheet)
        print(f"wrote {args.sheet}")
    return 0
