"""`ganinstrument perform`: the instrument at the gig.

Startup, in order: the instrument (model, presets), the mapping, the inputs (MIDI, OSC,
audio), the outputs, then the engine loop. Every input is optional: a missing controller,
OSC port or audio device is said once and the show goes on without it (MIDI keeps looking
for the controller and picks it up when it is plugged in). Shutdown is the reverse.

Unless `--no-restart`, the command runs under supervisor.py, which restarts it after a crash;
the running show autosaves its look (autosave.py) for that.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from ..common.clock import MonotonicClock
from ..common.errors import GanInstrumentError
from .directions import add_directions_option, directions_arg
from .supervisor import AUTOSAVE_ENV, CHILD_ENV, RESTART_ENV, restarted_name

log = logging.getLogger("ganinstrument")

NO_LINK_ENV = "GANINSTRUMENT_NO_LINK"  # 1: --no-link (the test suite sets it: Link only in its own network)
WARMUP_FRAMES = 3  # CPU convolution back ends set themselves up on the first calls per shape


def resolve_preset(name: str, presets_dir) -> Path:
    """A preset path as given, or a name / slot number in the presets folder, else among the
    shipped presets; a PresetError that says where it looked if none."""
    from ..common import userdirs
    from ..state.preset_bank import PresetBank
    from ..state.presets import PresetError

    path = Path(name)
    if path.is_file():
        return path
    folders = [Path(presets_dir), userdirs.shipped_folder("presets")]
    for folder in folders:
        bank = PresetBank(folder)
        if name.isdigit() and bank.slot_path(int(name)) is not None:
            return bank.slot_path(int(name))
        for candidate in bank.files():
            if candidate.stem == name or candidate.name == name or candidate.stem.split(" ", 1)[-1] == name:
                return candidate
    raise PresetError(name, [f"no such preset file ({userdirs.looked_in(name, folders)})"])


def _open_midi(args, controls, clock, engine_box):
    if args.midi_port == "none":
        return None
    from ..sources.midi.input import MidiInput
    from ..sources.midi.ports import backend_of

    pattern = args.midi_port or controls.mapping.device.input or None

    def changed(change: str, port: str) -> None:
        # The hot-plug poller's thread: say it, and let the engine thread re-arm takeover and
        # re-send the LEDs on its next frame.
        log.info("MIDI input %s: %s", change, port)
        if change in ("opened", "reopened") and engine_box:
            engine_box[0].key_action("midi.reconnected")

    try:
        midi = MidiInput(pattern, backend=backend_of(args), clock=clock, on_change=changed).start()
    except (GanInstrumentError, OSError, ImportError) as exc:
        log.warning("MIDI input unavailable (%s); playing without a controller", exc)
        return None
    if not midi.open_ports:
        log.warning("no MIDI input matching %r yet; plug it in, it is picked up when it appears",
                    pattern or "any port")
    return midi


def _open_feedback(args, inst, controls, clock):
    """LEDs / motor faders: only when the mapping names an output port (never a synth)."""
    pattern = controls.mapping.device.output
    if args.midi_port == "none" or not pattern:
        return None
    from ..sources.midi.feedback import MidiFeedback, from_bindings
    from ..sources.midi.input import MidiOutput
    from ..sources.midi.ports import backend_of

    try:
        output = MidiOutput(pattern, backend=backend_of(args)).start()
    except (GanInstrumentError, OSError, ImportError) as exc:
        log.warning("MIDI output for LEDs unavailable (%s)", exc)
        return None
    feedback = MidiFeedback(output, from_bindings(controls.router.active_bindings(), inst.registry),
                            inst.state.targets, clock=clock)

    def page_changed(bank: str, page: str) -> None:
        feedback.bindings = tuple(from_bindings(controls.router.active_bindings(), inst.registry))
        feedback.resend_all()

    controls.router.on_page.append(page_changed)
    inst.on_recall.append(feedback.resend_all)
    return feedback


def _open_osc(args, inst, clock):
    if args.osc_port in (None, "off", "none"):
        return None
    from ..sources.osc import OscServer

    try:
        osc = OscServer(inst.registry, port=int(args.osc_port), clock=clock).start()
    except (GanInstrumentError, OSError, ValueError) as exc:
        log.warning("OSC input unavailable (%s); playing without OSC", exc)
        return None
    return osc


def _open_audio(args, clock, tap=None):
    if args.audio_device == "none":
        return None
    from ..sources.audio.input import AudioInput

    device = args.audio_device
    if device is not None and device.isdigit():
        device = int(device)
    try:
        audio = AudioInput(device, clock=clock, tap=tap)
        if not audio.start():
            return None  # AudioInput has said why
    except (GanInstrumentError, OSError, ImportError, ValueError) as exc:
        log.warning("audio input unavailable (%s); playing without audio features "
                    "(ganinstrument devices lists the inputs)", exc)
        return None
    status = audio.status()
    log.info("audio: %s at %d Hz", status.device, status.sample_rate)
    return audio


def _after_restart(args, restart: int) -> None:
    """A restarted child writes its recording and logs to new files, keeping the old ones."""
    if restart <= 0:
        return
    if args.output:
        items = []
        for item in args.output.split(","):
            kind, sep, rest = item.strip().partition(":")
            items.append(f"{kind}:{restarted_name(rest, restart)}" if kind == "record" and sep else item)
        args.output = ",".join(items)
    for name in ("log_params", "record_session"):
        if getattr(args, name):
            setattr(args, name, restarted_name(getattr(args, name), restart))


def run_perform(args) -> int:
    if not getattr(args, "no_restart", True) and os.environ.get(CHILD_ENV) is None:
        from .supervisor import supervise

        return supervise(getattr(args, "argv", []))
    import torch

    threads = torch.get_num_threads()
    try:
        return _perform(args)
    finally:
        torch.set_num_threads(threads)  # as it was (tests run perform in-process)


def _perform(args) -> int:
    from ..engine.loop import Engine
    from ..instrument.facade import Instrument
    from ..modulation.audio import AudioFeatures
    from ..modulation.lfo import LfoSource
    from ..outputs.live_audio import AudioTap
    from ..outputs.spec import default_output_spec, open_sinks
    from ..sources.replay import ReplayError, SessionWriter
    from ..state.presets import to_yaml_dict
    from .autosave import Autosave

    restart = int(os.environ.get(RESTART_ENV, "0") or 0)
    autosave_path = os.environ.get(AUTOSAVE_ENV)
    _after_restart(args, restart)
    tempo_mode = parse_tempo(args.tempo)[0]  # (a bad --tempo is said before anything loads)
    clock = MonotonicClock()
    inst = Instrument(args.model, args.model_b, device=args.device, presets_dir=args.presets_dir,
                      directions=directions_arg(args.directions))
    args.presets_dir = inst.bank.directory  # (None: the user's presets folder)
    log.info("model %s on %s", args.model, inst.device)
    if inst.device.type == "cpu":
        _leave_a_core()
    if restart and autosave_path and Path(autosave_path).is_file():
        try:
            inst.load_preset(autosave_path)
            log.info("resumed the look autosaved before the crash")
        except GanInstrumentError as exc:
            log.warning("could not resume the autosaved look (%s); starting afresh", exc)
    elif args.preset:
        inst.load_preset(resolve_preset(args.preset, args.presets_dir))
    controls = inst.use_mapping(args.mapping, clock)
    for warning in controls.warnings:
        log.warning("%s", warning)
    first = inst.warm_up(WARMUP_FRAMES)
    width, height = first.size

    engine_box: list[Engine] = []
    spec = args.output or default_output_spec()
    # the audio input: for the mapping's routes, or for the beat tracker (--tempo audio)
    wants_audio = (controls.modulation is not None or tempo_mode == "audio") \
        and args.audio_device != "none"
    tap = AudioTap() if wants_audio else None  # the audio input, into recordings and takes
    sinks = open_sinks(spec, width, height, args.fps or 60.0, required=args.output is not None,
                       resume_takes=restart > 0,  # a take the crash ended goes on
                       live_audio=tap,
                       on_action=lambda action: engine_box[0].key_action(action) if engine_box else None)
    midi = osc = audio = session = feedback = beat = autosave = None
    try:
        inst.bank.start()  # the presets folder read now, then by its worker, never by the engine
        midi = _open_midi(args, controls, clock, engine_box)
        feedback = _open_feedback(args, inst, controls, clock)
        osc = _open_osc(args, inst, clock)
        audio = _open_audio(args, clock, tap) if wants_audio else None
        session_path, auto_session = _show_session_path(args, sinks)
        if session_path is not None:
            try:
                session = SessionWriter(session_path, model=str(args.model), model_b=args.model_b,
                                        directions=args.directions,
                                        mapping=str(args.mapping), preset=args.preset, fps=args.fps,
                                        presets_dir=str(args.presets_dir), restart=restart,
                                        look=to_yaml_dict(inst.snapshot("the look the show started with")))
            except ReplayError as exc:
                if not auto_session:
                    raise
                log.warning("%s; takes will not be renderable again", exc)
                session_path = None
        for takes in _takes_outputs(sinks) if session_path is not None else ():
            takes.session_path = Path(session_path).resolve()  # named in each take's note
        autosave = Autosave(inst, autosave_path) if autosave_path else None
        beat = beat_source(args.tempo, inst, clock, midi.midi_clock if midi is not None else None, audio,
                           link=False if args.no_link else None)
        if beat.mode == "midi" and midi is None:
            log.warning("--tempo midi: no MIDI input (--midi-port none?); the beat clock keeps its own time (tap)")
        lfos = [LfoSource(controls.mapping.lfos, clock, beat.beat, inst.state.values)] if controls.mapping.lfos \
            else []
        engine = Engine(inst, router=controls.router, controls=[p for p in (midi, osc) if p is not None], beat=beat,
                        modulation=([AudioFeatures(audio)] if audio is not None else []) + lfos,
                        sinks=sinks, clock=clock,
                        feedback=feedback, autosave=autosave,
                        fps=args.fps or None, max_frames=args.max_frames, log_params=args.log_params,
                        session=session)
    except BaseException:  # (nothing is left running: the ports, the audio, Link's thread, the files)
        for close in (getattr(midi, "close", None), getattr(osc, "close", None), getattr(feedback, "close", None),
                      getattr(autosave, "close", None),
                      getattr(audio, "stop", None), getattr(beat, "stop", None), getattr(session, "close", None),
                      sinks.close, inst.bank.close):
            if close is not None:
                _close_quietly(close)
        raise
    engine_box.append(engine)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: engine.request_stop())
    log.info("playing: outputs %s; Ctrl-C to stop", ", ".join(s.name for s in sinks) or "none")
    stats = engine.run()
    if auto_session and session_path is not None:
        _keep_session_for_takes(session_path, _takes_outputs(sinks))
    dropped = {s.name: s.dropped for s in sinks.stats()}
    log.info("stopped after %d frames (%d rendered, %d errors); dropped per output: %s",
             stats.frames, stats.rendered, stats.errors, dropped)
    return 0 if stats.errors == 0 else 1


def _close_quietly(close) -> None:
    """Close one part of a show that failed to start; its own failure only logged (the first
    error is the one to report)."""
    try:
        close()
    except Exception as exc:
        log.warning("while closing after a failed start: %s", exc)


def parse_tempo(text: str | None) -> tuple[str, float | None]:
    """--tempo: (mode, BPM to start at): "auto", "link", "midi", "audio", "tap", or a BPM (a
    fixed start, then tap or knob)."""
    text = (text or "auto").strip().lower()
    if text in ("tap", "auto", "midi", "audio", "link"):
        return text, None
    from ..modulation.beat_clock import BPM_MAX, BPM_MIN

    span = f"{BPM_MIN:g} .. {BPM_MAX:g}"
    try:
        bpm = float(text)
    except ValueError:
        raise GanInstrumentError(f"--tempo {text!r}: expected auto, link, midi, audio, tap or a BPM ({span})") \
            from None
    if not BPM_MIN <= bpm <= BPM_MAX:
        raise GanInstrumentError(f"--tempo {text}: a BPM from {BPM_MIN:g} to {BPM_MAX:g}")
    return "tap", bpm


def beat_source(tempo: str | None, inst, clock, midi_clock=None, audio=None, link: bool | None = None):
    """The show's beat clock, at --tempo's BPM (else the instrument's tempo.bpm); in the Ableton
    Link session with --tempo link and auto (unless `link` is off: --no-link; None: on unless
    $GANINSTRUMENT_NO_LINK says otherwise)."""
    from ..modulation.beat import BeatSource
    from ..modulation.beat_clock import BeatClock

    link = not _env_flag(NO_LINK_ENV) if link is None else link
    mode, bpm = parse_tempo(tempo)
    if bpm is not None:
        inst.set("tempo.bpm", bpm, immediate=True)
    beat = BeatClock(inst.get("tempo.bpm"), int(inst.get("tempo.beats_per_bar")), t0=clock.now())
    node = _open_link(beat.bpm) if link and mode in ("link", "auto") else None
    if mode == "link" and node is None:
        log.warning("--tempo link: %s; the beat clock keeps its own time (tap)",
                    "Link is off (--no-link)" if not link else "Ableton Link could not start")
    return BeatSource(clock, beat, values=inst.state.values, midi=midi_clock, mode=mode, audio=audio, link=node)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "no", "false", "off")


def _open_link(bpm: float):
    from ..sources.link import LinkNode

    try:
        return LinkNode(bpm).start()
    except Exception as exc:  # (no network, no sockets: the show goes on without Link)
        log.warning("Ableton Link could not start (%s)", exc)
        return None


def _takes_outputs(sinks) -> list:
    from ..outputs.takes import TakeRecorder

    return [s for s in sinks if isinstance(s, TakeRecorder)]


def _show_session_path(args, sinks) -> tuple[Path | None, bool]:
    """(where the show's session goes, whether it was chosen here): `--record-session`; else,
    with the takes output, `show-YYYYMMDD-HHMMSS.jsonl` in the takes folder, so every take can
    be rendered again (`render --take`), kept only if a take was recorded."""
    if args.record_session:
        return Path(args.record_session), False
    takes = _takes_outputs(sinks)
    if not takes:
        return None, False
    from datetime import datetime

    folder = takes[0].directory
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"show-{stamp}.jsonl"
    n = 2
    while path.exists():
        path, n = folder / f"show-{stamp}-{n}.jsonl", n + 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("takes: cannot create %s (%s); takes will not be renderable again", folder, exc)
        return None, False
    return path, True


def _keep_session_for_takes(path: Path, takes) -> None:
    """The session chosen for the takes goes again if no take was recorded (with its folder,
    if that is left empty)."""
    saved = [p for t in takes for p in t.saved]
    if saved:
        log.info("the show's session, for rendering its takes again: %s (e.g. ganinstrument render "
                 "--take %s --size 1920x1080 --out %s)", path, saved[-1], saved[-1].with_name(
                     saved[-1].stem + "-again.mp4"))
        return
    try:
        path.unlink(missing_ok=True)
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
    except OSError as exc:
        log.debug("could not tidy %s: %s", path, exc)


def _leave_a_core() -> None:
    """CPU torch takes one core fewer, so the encoder, audio and MIDI keep one (openmp.py)."""
    import torch

    from ..common.openmp import leave_a_core

    if leave_a_core() is None:
        log.info("CPU: %d torch thread(s), as OMP_NUM_THREADS says", torch.get_num_threads())
    else:
        log.info("CPU: %d torch thread(s), one core left to the outputs, audio and MIDI "
                 "(OMP_NUM_THREADS=N to choose)", torch.get_num_threads())


def add_perform_parser(sub) -> None:
    p = sub.add_parser("perform", help="play live: controller, audio and outputs")
    p.add_argument("--model", default="demo", help="model file or 'demo' (default)")
    p.add_argument("--model-b", default=None, help="a second model of the same architecture, for blend.* targets")
    p.add_argument("--mapping", default="generic", help="mapping file or shipped name (default: generic)")
    p.add_argument("--preset", default=None, help="preset file, name or slot number to start from")
    add_directions_option(p)
    p.add_argument("--presets-dir", default=None,
                   help="folder for preset.next/prev/recall/save (default: your presets folder, see README)")
    p.add_argument("--midi-port", default=None,
                   help="MIDI input port name (substring or /regex/); default: the mapping's device; 'none'")
    from ..sources.midi.ports import add_midi_api_option

    add_midi_api_option(p)
    p.add_argument("--audio-device", default=None,
                   help="audio input name (substring) or index; default: the system input; 'none'")
    p.add_argument("--osc-port", default="9000", help="UDP port for OSC input (default 9000; 'off')")
    p.add_argument("--output", default=None,
                   help="comma-separated: spout[:NAME], ndi[:NAME], preview[:fullscreen][:monitor=N], "
                        "record:FILE.mp4, takes[:DIR] (R records), null (default: preview and Spout where "
                        "available, and takes)")
    p.add_argument("--fps", type=float, default=60.0, help="frame rate to pace at (0: as fast as possible)")
    p.add_argument("--tempo", default="auto",
                   help="the beat clock: auto (Ableton Link while it has peers, else MIDI clock while it comes, "
                        "else the music's beat while the tracker is sure, else tap), link, midi (the MIDI "
                        "input's clock), audio (the beat tracker), tap, or a BPM to start at (default auto)")
    p.add_argument("--no-link", action="store_true",
                   help=f"stay out of Ableton Link sessions (with --tempo auto; also ${NO_LINK_ENV}=1)")
    p.add_argument("--device", default=None, help="torch device: cuda, cuda:1, mps, cpu (default: automatic)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames (headless runs, tests)")
    p.add_argument("--log-params", default=None, metavar="FILE.jsonl", help="every target value per frame (JSON lines, on disk within a second)")
    p.add_argument("--record-session", default=None, metavar="FILE.jsonl",
                   help="log every control and audio-feature event, for `render --session` (with the "
                        "takes output, the show's session is kept in the takes folder anyway, for `render --take`)")
    p.add_argument("--no-restart", action="store_true",
                   help="do not restart after a crash (by default a crash restarts perform from the "
                        "look it autosaved, recording to a new file)")
    p.set_defaults(func=run_perform)
