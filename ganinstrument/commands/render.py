"""`ganinstrument render`: an audio-reactive video from a music file, offline and deterministic.

The same engine as `perform` (engine.loop.Engine), run offline: its clock advances exactly
1/fps per frame and never waits; the sources are the recorded ones (sources.protocols): the
audio analysed block by block up to each frame's time, or a session's recorded features;
MIDI-file automation and a session's controls handed out at their times, routed through the
mapping. Every frame is written (offline sinks wait rather than drop). For a take, a pre-roll
plays the show before it without drawing. The audio is muxed into the video. Two runs with
the same inputs give identical frames.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

from ..common.clock import FakeClock
from ..common.errors import GanInstrumentError
from ..common.files import new_file_mode, set_mode
from ..sources.audio.file import AudioFileError, read_audio
from .directions import add_directions_option, directions_arg
from .progress import Progress

log = logging.getLogger("ganinstrument")


class RenderError(GanInstrumentError, ValueError):
    """Bad render arguments or inputs: names what is wrong."""


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RenderError(f"--size must look like 1920x1080, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise RenderError(f"--size {text}: width and height must be 16..8192")
    return w, h


# What `perform --record-session` writes in the session's header, and render's own defaults:
# what the command line leaves out is taken from the session, so a performance renders again
# with the model, second model, mapping, starting look (or preset) and presets folder it was
# played with.
SESSION_DEFAULTS = (("model", "demo"), ("model_b", None), ("mapping", "generic"), ("preset", None),
                    ("presets_dir", None), ("directions", "auto"))
SESSION_BEFORE_DIRECTIONS = "none"  # a session whose header names no directions was played without them  # None: the user's presets folder (userdirs)


def _defaults_from_session(args, header: dict) -> None:
    taken = []
    for name, default in SESSION_DEFAULTS:
        if getattr(args, name) is None:
            # a session that holds its starting look starts from that, not from a preset file
            value = None if name == "preset" and isinstance(header.get("look"), dict) else header.get(name)
            if name == "directions" and value is None and args.session:
                value = SESSION_BEFORE_DIRECTIONS
            if value is not None:
                taken.append(f"{name.replace('_', '-')} {value}")
            setattr(args, name, value if value is not None else default)
    if args.fps is None:
        fps = header.get("fps")
        args.fps = float(fps) if isinstance(fps, (int, float)) and fps > 0 else 30.0
        if fps:
            taken.append(f"fps {args.fps:g}")
    if taken:
        log.info("from the session %s: %s", args.session, ", ".join(taken))


def run_render(args) -> int:
    from ..engine.loop import Engine
    from ..instrument.facade import Instrument
    from ..modulation.audio import SOURCE as AUDIO
    from ..modulation.audio import AudioFeatures
    from ..modulation.beat import SOURCE as BEAT
    from ..modulation.beat import BeatSource
    from ..modulation.beat_clock import BPM_MAX, BPM_MIN, BeatClock
    from ..modulation.lfo import SOURCE as LFO
    from ..modulation.lfo import LfoSource
    from ..modulation.recorded import recorded_sources
    from ..outputs.spec import open_sinks
    from ..sources.audio.beatgrid import find_beat_grid
    from ..sources.audio.offline import BlockSource
    from ..sources.replay import ReplayError, TimelineControls, midi_file_events, read_session, read_take_note
    from ..state.presets import PresetError, parse_preset
    from .perform import resolve_preset

    take = None
    try:
        if args.take:
            take, session_header, session = read_take_note(args.take)
            args.session = str(take.session)
        else:
            session_header, session = read_session(args.session) if args.session else ({}, [])
    except ReplayError as exc:
        raise RenderError(str(exc)) from None
    _defaults_from_session(args, session_header)
    _refuse_out_among_inputs(args, take)  # (the session's model, mapping, preset included)
    if args.bpm is not None and not BPM_MIN <= args.bpm <= BPM_MAX:  # (nan fails too)
        raise RenderError(f"--bpm must be from {BPM_MIN:g} to {BPM_MAX:g}, got {args.bpm}")
    if args.beat_offset is not None and not -3600.0 <= args.beat_offset <= 86400.0:  # (nan fails too)
        raise RenderError(f"--beat-offset must be a number of seconds (-3600 .. 86400), got {args.beat_offset}")
    if args.fps <= 0 or not math.isfinite(args.fps):
        raise RenderError(f"--fps must be a positive number, got {args.fps}")
    size = parse_size(args.size)
    if take is not None:
        # The take's frames, from its first to its last; the show before it is played (not
        # rendered) so every value is where it was. Its sound: the take's own, if it has one.
        start_s = take.start_s
        frames_total = int(round((take.end_s - take.start_s) * args.fps)) + 1
        mux = args.audio or (os.fspath(take.video) if _has_sound(take.video) else None)
        samples = None
        log.info("take %s: %.2f s of the show from %.2f s; %d frames at %g fps", take.video.name,
                 take.end_s - take.start_s, start_s, frames_total, args.fps)
    else:
        if not args.audio:
            raise RenderError("render needs --audio FILE (the music), or --take FILE.mp4")
        start_s, mux = 0.0, os.fspath(args.audio)
        try:
            samples, rate = read_audio(args.audio)
        except AudioFileError as exc:
            raise RenderError(str(exc)) from None
        duration_s = samples.shape[0] / rate
        frames_total = int(math.floor(duration_s * args.fps + 1e-9))
        if frames_total < 1:
            raise RenderError(f"{args.audio}: {duration_s:.3f} s of audio is shorter than one frame")

    inst = Instrument(args.model, args.model_b, device=args.device, presets_dir=args.presets_dir,
                      directions=directions_arg(args.directions))
    args.presets_dir = inst.bank.directory  # (None: the user's presets folder)
    if args.preset:
        inst.load_preset(resolve_preset(args.preset, args.presets_dir))
    elif isinstance(session_header.get("look"), dict):  # the look the show started with
        where = f"{args.session} (the look the show started with)"
        try:
            inst.recall(parse_preset(session_header["look"], where), where)
        except PresetError as exc:
            raise RenderError(str(exc)) from None
    # The render's clock is the session's (0 at the show's first frame); a take's frames are
    # drawn from start_s on, after a pre-roll of the show before it.
    pre_roll = int(math.floor(start_s * args.fps + 1e-9))
    clock = FakeClock(start_s - pre_roll / args.fps)
    controls = inst.use_mapping(args.mapping, clock)
    for warning in controls.warnings:
        log.warning("%s", warning)
    # The recorded controls: the session's (their timestamps on the show's clock, put on the
    # render's) and a MIDI file's (already from 0)
    clock_s = session_header.get("clock_s") if isinstance(session_header.get("clock_s"), float) else 0.0
    recorded_controls = [TimelineControls(session, clock, clock_s)] + (
        [TimelineControls(midi_file_events(args.midi), clock)] if args.midi else [])
    # The modulation's sources: what the session recorded of them; what it did not record is
    # made here (the music analysed, the beat clock at --bpm, the mapping's LFOs on it).
    modulation = recorded_sources(session, clock)
    recorded = {source.name for source in modulation}
    beat = None
    if BEAT not in recorded:
        grid = None
        if args.bpm is None and samples is not None:  # the music's own beat (the whole file is known)
            grid = find_beat_grid(samples, rate)
            log.info("beat grid from the music: %s", "no steady beat found (--bpm N sets one)" if grid is None else
                     f"{grid.bpm:.2f} BPM, first beat at {grid.first_beat_s:.3f} s (confidence {grid.confidence:.2f};"
                     " --bpm and --beat-offset override)")
        bpm = args.bpm if args.bpm is not None else grid.bpm if grid is not None else inst.get("tempo.bpm")
        t0 = args.beat_offset if args.beat_offset is not None else grid.first_beat_s if grid is not None else 0.0
        inst.set("tempo.bpm", bpm, immediate=True)
        beat = BeatSource(clock, BeatClock(bpm, int(inst.get("tempo.beats_per_bar")), t0=t0),
                          values=inst.state.values)
    if AUDIO not in recorded and samples is not None and controls.modulation is not None:  # (routes to feed)
        modulation.append(AudioFeatures(BlockSource(samples, rate, follow=clock)))
    if LFO not in recorded and controls.mapping.lfos:
        modulation.append(LfoSource(controls.mapping.lfos, clock, beat.beat if beat is not None else
                                    BeatClock(inst.get("tempo.bpm"), int(inst.get("tempo.beats_per_bar"))),
                                    inst.state.values))

    out = os.fspath(args.out)
    to_frames = out.endswith(os.sep) or out.endswith("/") or Path(out).is_dir()
    width, height = size or (inst.G.img_resolution, inst.G.img_resolution)
    # A video goes to a temporary file beside --out, which replaces --out once it is complete
    with contextlib.nullcontext(out) if to_frames else _Partial(os.path.realpath(out)) as target:
        sinks = open_sinks(f"frames:{target}" if to_frames else f"record:{target}", width, height,
                           args.fps, required=True, offline=True, size=size,
                           **({"audio": mux} if mux and not to_frames else {}))
        engine = Engine(inst, router=controls.router, controls=recorded_controls, beat=beat,
                        modulation=modulation, sinks=sinks, clock=clock,
                        fps=args.fps, offline=True, pre_roll=pre_roll, max_frames=frames_total,
                        log_params=args.log_params, trim_heap_s=None, close_timeout_s=120.0, start_s=0.0)
        progress = Progress(frames_total, unit="frames")

        def frame_out(frame, times) -> None:
            if frame is not None:  # (the pre-roll draws nothing)
                progress.update(engine.stats.frames)

        engine.on_frame.append(frame_out)
        stats = engine.run()
        problems = [f"{s.name}: {s.last_error}" for s in sinks.stats() if s.errors]
        if problems or not stats.closed:
            why = "; ".join(problems or ["the writer did not finish"])
            for hidden in {target, os.path.splitext(target)[0] + ".video-only" + os.path.splitext(target)[1]}:
                why = why.replace(hidden, out)  # (the temporary files are the writer's business, not the user's)
            raise RenderError(f"--out {out}: writing it failed ({why}); "
                              f"{'the frames written so far stay' if to_frames else f'{out} is left as it was'}")
        if stats.errors:
            raise RenderError(f"frame {stats.frames} of {frames_total} failed to render ({stats.last_error}); "
                              f"{'the frames written so far stay' if to_frames else f'{out} is left as it was'}")
        if stats.frames != frames_total:
            raise RenderError(f"the render stopped after {stats.frames} of {frames_total} frames")
    log.info("wrote %s: %d frames at %g fps, %dx%d, %.2f s", out, frames_total, args.fps, width, height,
             frames_total / args.fps)
    return 0


def _refuse_out_among_inputs(args, take) -> None:
    """--out must not be one of the files the render reads (the same file, through links too):
    writing it would destroy the input."""
    out = os.fspath(args.out)
    if not os.path.exists(out):
        return
    inputs = [args.audio, args.take, args.session, args.midi, args.model, args.model_b, args.mapping,
              args.preset]
    if take is not None:
        inputs += [take.video, take.session, Path(args.take).with_suffix(".json")]
    for name in inputs:
        if name is not None and os.path.isfile(name) and os.path.samefile(name, out):
            raise RenderError(f"--out {out} is the input {name}: rendering would overwrite it; "
                              "give --out another file")


class _Partial:
    """A temporary file beside `final`, named after it (hidden, with `.partial` before the
    extension, so the muxer still knows the format): the render writes there, and it replaces
    `final` only once the render has finished without an error. A render that fails or is
    stopped (Ctrl-C) removes it and leaves what was at `final` untouched; one killed outright
    leaves at most the hidden .partial file, never a half-written `final`."""

    def __init__(self, final: str):
        self.final = final

    def __enter__(self) -> str:
        import tempfile

        folder, name = os.path.split(self.final)
        if not os.path.isdir(folder or "."):
            raise RenderError(f"--out {self.final}: the folder {folder} does not exist")
        stem, ext = os.path.splitext(name)
        try:
            fd, self.path = tempfile.mkstemp(prefix=f".{stem[:40]}.", suffix=f".partial{ext}", dir=folder or ".")
        except OSError as exc:
            raise RenderError(f"--out {self.final}: cannot write there ({exc.strerror or exc})") from None
        os.close(fd)
        set_mode(self.path, new_file_mode())  # what a new file gets (mkstemp makes it 0600)
        return self.path

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                os.replace(self.path, self.final)
        finally:
            Path(self.path).unlink(missing_ok=True)  # (gone already where it was moved)


def _has_sound(video) -> bool:
    import av

    try:
        with av.open(os.fspath(video)) as container:
            return bool(container.streams.audio)
    except Exception as exc:  # av raises FFmpegError flavours and OSError
        raise RenderError(f"{video}: cannot read the take ({exc})") from None


def add_render_parser(sub) -> None:
    p = sub.add_parser("render", help="render an audio-reactive video from a music file (offline)")
    p.add_argument("--model", default=None, help="model file or 'demo' (default: the session's, else demo)")
    p.add_argument("--model-b", default=None, help="a second model, for blend.* targets (default: the session's)")
    p.add_argument("--mapping", default=None, help="mapping file or shipped name: its audio routes "
                   "and the bindings MIDI files and sessions go through (default: the session's, else generic)")
    p.add_argument("--audio", default=None, help="the music: wav, flac, ogg, mp3, m4a, or the sound of a "
                   "video (needed unless --take)")
    p.add_argument("--take", default=None, metavar="TAKE.mp4",
                   help="a take recorded by perform: its frames again, from the show's session kept "
                        "beside it, at any --size, with its own sound")
    p.add_argument("--midi", default=None, help="a MIDI file of controller automation, played through the mapping")
    p.add_argument("--session", default=None, help="a session recorded by `perform --record-session`; "
                   "what the other options leave out (model, mapping, preset, fps) is taken from it")
    p.add_argument("--preset", default=None, help="preset file, name or slot to start from")
    add_directions_option(p, default=None)  # (None: the session's, else auto)
    p.add_argument("--presets-dir", default=None,
                   help="folder of presets (default: the session's, else your presets folder)")
    p.add_argument("--out", required=True, help="FILE.mp4, or DIR/ for PNG frames")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the session's, else 30)")
    p.add_argument("--size", default=None, help="output size WxH (default: the model's resolution)")
    p.add_argument("--device", default=None, help="torch device (default: automatic)")
    p.add_argument("--bpm", type=float, default=None, help="the beat clock's tempo (LFOs, envelopes, quantized "
                   "actions; default: found in the music, else 120; a session plays its own recorded clock)")
    p.add_argument("--beat-offset", type=float, default=None, metavar="S",
                   help="the time of the first beat, in seconds (default: found in the music, else 0)")
    p.add_argument("--log-params", default=None, metavar="FILE.jsonl",
                   help="every target value per frame (JSON lines), as perform --log-params writes them")
    p.set_defaults(func=run_render)
