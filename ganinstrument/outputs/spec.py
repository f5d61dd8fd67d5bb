"""`--output` specs: "spout,preview,record:FILE.mp4,null" -> opened sinks.

    spout | spout:NAME                      Spout sender (Windows), default name "ganinstrument"
    ndi | ndi:NAME                          NDI source on the network (ndi-python), default "ganinstrument"
    preview | preview:fullscreen | preview:monitor=1 | preview:size=1280x720:vsync:nohud
    record:FILE.mp4                         H.264 video (PyAV); record:DIR/ writes PNG frames
    takes | takes:DIR                       takes started and ended by record.toggle (R), in DIR
    frames:DIR                              PNG frames
    null                                    counts frames (benchmarks)

Parsing checks everything at once and says what is wrong with each item; availability checks
say what this machine lacks and why, before any window opens.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .base import Sink, SinkError, Sinks, SinkSpecError, SinkUnavailableError

log = logging.getLogger(__name__)

KINDS = ("spout", "ndi", "preview", "record", "takes", "frames", "null")
USAGE = "spout[:NAME], ndi[:NAME], preview[:fullscreen|:monitor=N|:size=WxH|:vsync|:nohud], " \
        "record:FILE.mp4, takes[:DIR], frames:DIR, null"
PREVIEW_FLAGS = ("fullscreen", "vsync", "nohud")


@dataclass(frozen=True)
class SinkSpec:
    """One parsed item: `kind` and its options (name, path, preview settings)."""

    kind: str
    text: str
    options: tuple[tuple[str, object], ...] = ()

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)


def parse_output_spec(spec: str) -> list[SinkSpec]:
    """Parse a comma-separated output list. Raises `SinkSpecError` listing every problem."""
    items, problems = [], []
    for raw in spec.split(","):
        text = raw.strip()
        if not text:
            problems.append(f"empty item in {spec!r}")
            continue
        kind, _, arg = text.partition(":")
        kind = kind.strip().lower()
        try:
            items.append(_parse_item(kind, arg.strip(), text))
        except ValueError as err:
            problems.append(f"{text!r}: {err}")
    problems += _duplicates(items)
    if problems:
        raise SinkSpecError("bad --output: " + "; ".join(problems) + f" (outputs: {USAGE})")
    return items


def _parse_item(kind: str, arg: str, text: str) -> SinkSpec:
    if kind == "spout":
        return SinkSpec("spout", text, (("sender_name", arg or "ganinstrument"),))
    if kind == "ndi":
        return SinkSpec("ndi", text, (("source_name", arg or "ganinstrument"),))
    if kind == "null":
        if arg:
            raise ValueError("null takes no argument")
        return SinkSpec("null", text)
    if kind in ("record", "frames"):
        if not arg:
            raise ValueError(f"{kind} needs a path ({kind}:{'FILE.mp4' if kind == 'record' else 'DIR'})")
        if kind == "frames" or arg.endswith(("/", os.sep)):
            return SinkSpec("frames", text, (("directory", arg),))
        return SinkSpec("record", text, (("path", arg),))
    if kind == "takes":
        return SinkSpec("takes", text, (("directory", arg or "takes"),))
    if kind == "preview":
        return SinkSpec("preview", text, tuple(_preview_options(arg)))
    raise ValueError(f"unknown output {kind!r}")


def _preview_options(arg: str):
    for part in filter(None, (p.strip().lower() for p in arg.split(":"))):
        key, eq, value = part.partition("=")
        if key in PREVIEW_FLAGS and not eq:
            yield key, True
        elif key == "monitor" and eq and value.isdigit():
            yield "monitor", int(value)
        elif key == "size" and eq and _size(value):
            yield "size", _size(value)
        else:
            raise ValueError(f"unknown preview option {part!r} (fullscreen, monitor=N, "
                             "size=WxH, vsync, nohud)")


def _size(text: str):
    w, x, h = text.partition("x")
    if x and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
        return int(w), int(h)
    return None


def _duplicates(items: list[SinkSpec]) -> list[str]:
    seen, problems = {}, []
    for item in items:
        key = (item.kind, item.options if item.kind != "preview" else ())
        if key in seen and item.kind != "null":
            problems.append(f"{item.text!r} repeats {seen[key]!r}")
        seen.setdefault(key, item.text)
    return problems


def unavailable_reason(kind: str) -> str | None:
    """Why `kind` cannot run on this machine, or None if it can (no window is opened)."""
    if kind == "spout":
        from .spout import import_spoutgl

        try:
            import_spoutgl()
        except SinkUnavailableError as err:
            return str(err)
        return None
    if kind == "ndi":
        if importlib.util.find_spec("NDIlib") is None:
            return "ndi: ndi-python is not installed (pip install ganinstrument[ndi])"
        return None
    if kind == "preview":
        if sys.platform == "darwin":
            return "preview: not on macOS yet (a window must live on the main thread there)"
        missing = [m for m in ("glfw", "moderngl") if importlib.util.find_spec(m) is None]
        if missing:
            return f"preview: {' and '.join(missing)} not installed " \
                   "(pip install ganinstrument[preview])"
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                     or os.environ.get("WAYLAND_DISPLAY")):
            return "preview: no display (DISPLAY is not set); use record:FILE.mp4 or null, " \
                   "or run under Xvfb"
        return None
    if kind in ("record", "frames", "takes"):
        if importlib.util.find_spec("av") is None:
            return f"{kind}: PyAV is not installed (pip install av)"
        return None
    return None


def available_outputs() -> dict[str, str | None]:
    """Every output kind -> None if it can run here, else the reason it cannot."""
    return {kind: unavailable_reason(kind) for kind in KINDS}


def default_output_spec() -> str:
    """What `perform` uses when no --output is given: preview and Spout where available
    (else null), and takes, armed (R records)."""
    kinds = [k for k in ("preview", "spout") if unavailable_reason(k) is None] or ["null"]
    if unavailable_reason("takes") is None:
        kinds.append("takes")
    return ",".join(kinds)


def make_sink(item: SinkSpec, *, offline: bool = False,
              hud: Callable[[], Mapping[str, object]] | None = None,
              on_action: Callable[[str], None] | None = None, audio=None,
              audio_sample_rate: int | None = None, resume_takes: bool = False,
              live_audio=None) -> Sink:
    """Build (not open) the sink an item describes. `offline`: recorders wait instead of
    dropping (for `render`; never for live use). `audio`: a file muxed into a recording (render).
    `live_audio` (outputs/live_audio.AudioTap): the live audio input, recorded alongside by
    `record` and `takes`, sent alongside by `ndi`. `resume_takes`: after a crash, a take the crash ended goes on in a
    new file (outputs/takes.py)."""
    sink = _make_sink(item, offline, hud, on_action, audio, audio_sample_rate, resume_takes, live_audio)
    if offline:
        sink.restart = False  # a render fails rather than go on with frames missing
    return sink


def _make_sink(item: SinkSpec, offline, hud, on_action, audio, audio_sample_rate, resume_takes,
               live_audio) -> Sink:
    on_full = "wait" if offline else "drop"
    if item.kind == "null":
        from .null import NullSink

        return NullSink(on_full=on_full)
    if item.kind == "record":
        from .recorder import VideoRecorder

        return VideoRecorder(item.option("path"), on_full=on_full, audio=audio,
                             audio_sample_rate=audio_sample_rate, crash_safe=not offline,
                             live_audio=live_audio, reopen=not offline)
    if item.kind == "takes":
        from .takes import TakeRecorder

        return TakeRecorder(item.option("directory"), resume=resume_takes, live_audio=live_audio)
    if item.kind == "frames":
        from .frames import FrameDirSink

        return FrameDirSink(item.option("directory"), on_full=on_full)
    if item.kind == "preview":
        from .preview import PreviewSink

        return PreviewSink(fullscreen=item.option("fullscreen", False),
                           monitor=item.option("monitor"), size=item.option("size"),
                           vsync=item.option("vsync", False),
                           show_hud=not item.option("nohud", False), hud=hud,
                           on_action=on_action)
    if item.kind == "spout":
        from .spout import SpoutSink

        return SpoutSink(item.option("sender_name"))
    if item.kind == "ndi":
        from .ndi import NdiSink

        return NdiSink(item.option("source_name"), live_audio=live_audio)
    raise ValueError(f"unknown output kind {item.kind!r}")


def open_sinks(spec: str, width: int, height: int, fps: float, *, required: bool = True,
               size: tuple[int, int] | None = None, **options) -> Sinks:
    """Parse `spec`, check availability, build and open every sink.

    `required=True` (the user named these outputs): anything unavailable or failing to open
    raises `SinkUnavailableError`/`SinkError` listing every problem, and nothing stays open.
    `required=False` (defaults): those are skipped with a warning. `options` go to
    `make_sink` (offline, hud, on_action, audio, audio_sample_rate, resume_takes, live_audio).
    `size`: every frame is scaled to it before it goes out (Sinks).
    """
    items = parse_output_spec(spec)
    reasons = {item.kind: unavailable_reason(item.kind) for item in items}
    problems = [reason for reason in reasons.values() if reason]
    if problems and required:
        raise SinkUnavailableError("; ".join(problems))
    opened: list[Sink] = []
    for item in items:
        if reasons[item.kind]:
            log.warning("%s", reasons[item.kind])
            continue
        sink = make_sink(item, **options)
        try:
            sink.open(width, height, fps)
        except SinkError as err:
            if required:
                Sinks(opened).close()
                raise
            log.warning("%s", err)
            continue
        opened.append(sink)
    return Sinks(opened, size=size)
