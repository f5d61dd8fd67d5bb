"""The `ganinstrument` command line.

Each subcommand is a small function taking parsed arguments and returning an exit code.
Errors of ours (GanInstrumentError) become one clear line on stderr and exit status 1; a
traceback is only shown with --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from ..common.errors import GanInstrumentError
from ..common.files import refuse_unwritable
from ..common.openmp import configure_openmp
from .directions import add_directions_option, add_directions_parser, directions_arg


def _cmd_info(args) -> int:
    from ..generator.info import describe, format_info
    from ..generator.loading import detect_format, load_generator

    for option, path in (("--sheet", args.sheet), ("--layers", args.layers), ("--bends", args.bends)):
        if path and not path.lower().endswith(".png"):
            raise GanInstrumentError(f"{option} {path}: a sheet is a .png")
    refuse_unwritable(("--sheet", args.sheet), ("--layers", args.layers), ("--bends", args.bends))
    fmt = detect_format(args.model)
    G = load_generator(args.model, device="cpu")
    info = describe(G)
    notes = list(getattr(G, "load_notes", ()))
    if args.sheet or args.layers or args.bends:
        from ..instrument.facade import Instrument
        from ..instrument.sheets import bends_sheet, layers_sheet, save_png, seeds_sheet

        inst = Instrument(G, device="cpu", directions=None)
        if args.sheet:
            save_png(seeds_sheet(inst), args.sheet)
        if args.layers:
            save_png(layers_sheet(inst), args.layers)
        if args.bends:
            save_png(bends_sheet(inst, args.bend_layer), args.bends)
    if args.json:
        print(json.dumps(dict(asdict(info), format=fmt, notes=notes), indent=1))
    else:
        print(format_info(info, source=f"{args.model} ({fmt})", verbose=args.verbose))
        for note in notes:
            print(f"note: {note}")
    for path in (args.sheet, args.layers, args.bends):
        if path:
            print(f"wrote {path}")
    return 0


def _cmd_convert(args) -> int:
    from ..generator.loading import convert_model

    refuse_unwritable((None, args.dst))  # (before a large model is read)
    convert_model(args.src, args.dst)
    print(f"wrote {args.dst}")
    return 0


def _cmd_targets(args) -> int:
    from ..instrument.facade import Instrument

    inst = Instrument(args.model, args.model_b, device="cpu", directions=directions_arg(args.directions))
    print(f"{'target':<18} {'range':<22} {'default':>9}  {'smoothing':<16} doc")
    for name, spec in inst.targets().items():
        if spec.kind == "choice":
            rng = "|".join(spec.choices) if len(spec.choices) <= 4 else f"{len(spec.choices)} choices"
        else:
            rng = f"{spec.minimum:g} .. {spec.maximum:g}" + (" (extrap.)" if spec.extrapolate else "")
        smooth = "none" if spec.smoothing == "none" else f"{spec.smoothing} {spec.smoothing_ms:g} ms"
        print(f"{name:<18} {rng:<22} {spec.default:>9g}  {smooth:<16} {spec.doc}")
    print()
    print("actions:")
    for name, spec in inst.actions().items():
        print(f"  {name:<16} {'(takes a value) ' if spec.takes_value else ''}{spec.doc}")
    print()
    print("signals (a modulation route's feature):")
    for name, spec in inst.registry.signals.items():
        kind = "event" if spec.event else f"{spec.input_range[0]:g} .. {spec.input_range[1]:g}"
        print(f"  {name:<16} {spec.source:<6} {kind:<14} {spec.doc}")
    return 0


def _cmd_check(args) -> int:
    from .check import registry_for, run_check

    registry = None if args.structure_only else registry_for(args.model, args.model_b,
                                                             directions_arg(args.directions))
    return run_check(args.files, registry)


def _cmd_devices(args) -> int:
    from ..sources.midi.ports import backend_of
    from .devices import report

    report(midi_backend=backend_of(args))
    return 0


def _cmd_learn(args) -> int:
    from ..instrument.facade import Instrument
    from ..sources.midi.input import MidiInput
    from ..sources.midi.ports import backend_of
    from .learn import learn_loop

    refuse_unwritable(("--out", args.out), folders_made=True)  # (before the conversation, not at its first binding)
    registry = Instrument(args.model, device="cpu", directions=directions_arg(args.directions)).registry
    with MidiInput(args.midi_port, backend=backend_of(args)) as midi:
        print(f"MIDI inputs: {', '.join(midi.open_ports) or 'none yet'}")
        for message in midi.messages:
            print(message)
        learn_loop(registry, midi, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganinstrument",
        description="A live visual instrument for StyleGAN2/StyleGAN3 models.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .perform import add_perform_parser
    from .render import add_render_parser

    add_perform_parser(sub)
    add_render_parser(sub)
    add_directions_parser(sub)

    p = sub.add_parser("info", help="describe a model: kind, dims, layers and their names")
    p.add_argument("model", help="a model file (.pkl, .pt, .safetensors) or 'demo'")
    p.add_argument("--verbose", "-v", action="store_true", help="list every tensor of every group")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--sheet", default=None, metavar="PNG", help="draw seeds 0..15 at psi 0.7 into this .png")
    p.add_argument("--layers", default=None, metavar="PNG", help="draw seed 0 at every layer (activations) into this .png")
    p.add_argument("--bends", default=None, metavar="PNG", help="draw every activation bend on one layer into this .png")
    p.add_argument("--bend-layer", default=None, metavar="LAYER", help="--bends' layer (default: the middle one)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("targets", help="list every target, action and signal a mapping or preset may name")
    p.add_argument("--model", default="demo", help="model file or 'demo' (target names depend on it)")
    p.add_argument("--model-b", default=None, help="a second model: adds the blend.* targets")
    add_directions_option(p)
    p.set_defaults(func=_cmd_targets)

    p = sub.add_parser("check", help="validate mapping and preset files: every problem with file:line; exit 1 if any")
    p.add_argument("files", nargs="+", metavar="FILE", help="mapping or preset YAML files")
    p.add_argument("--model", default="demo", help="check names against this model's targets (default: demo)")
    p.add_argument("--model-b", default=None, help="a second model: makes blend.* targets exist")
    p.add_argument("--structure-only", action="store_true", help="check the structure only, not target names")
    add_directions_option(p)
    p.set_defaults(func=_cmd_check)

    from ..sources.midi.ports import add_midi_api_option

    p = sub.add_parser("devices", help="MIDI ports, audio devices, output sinks and the torch device on this machine")
    add_midi_api_option(p)
    p.add_argument("--midi-backend", default=None, help="mido backend, e.g. mido.backends.rtmidi/UNIX_JACK "
                   "(default: --midi-api, else MIDO_BACKEND, else the first API that works)")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("learn", help="MIDI learn: pick a target, move a control, the binding goes into a mapping file")
    p.add_argument("--out", default="learned.yaml", help="mapping file to add bindings to (created if missing; "
                   "the rest of it is kept as it is)")
    p.add_argument("--midi-port", action="append", default=None, metavar="NAME",
                   help="input port: case-insensitive substring or /regex/ (repeatable; default: every input)")
    add_midi_api_option(p)
    p.add_argument("--midi-backend", default=None, help="mido backend (default: --midi-api, else MIDO_BACKEND)")
    p.add_argument("--model", default="demo", help="model file or 'demo' (target names depend on it)")
    add_directions_option(p)
    p.set_defaults(func=_cmd_learn)

    p = sub.add_parser("convert", help="convert any supported model file to ganinstrument's .safetensors")
    p.add_argument("src", help="input model file (.pkl NVlabs or TensorFlow, rosinality .pt, .safetensors)")
    p.add_argument("dst", help="output file, ending in .safetensors")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_openmp()  # before torch loads: OpenMP workers spin briefly, then sleep (openmp.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for perform's crash supervisor
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname).1s %(name)s: %(message)s" if args.debug else "%(message)s")
    try:
        return int(args.func(args) or 0)
    except GanInstrumentError as exc:
        if args.debug:
            raise
        print(f"ganinstrument {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # (a file or folder no check above foresaw: one line still names it)
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ganinstrument {args.command}: error: {where}{exc.strerror or exc} (--debug shows where)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
