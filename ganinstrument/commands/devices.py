"""`ganinstrument devices`: what this machine offers the instrument, and why a part is missing.

Each section is probed on its own and never raises: a missing library, a JACK server that is not
running or a machine without sound hardware becomes one line that says so.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def midi_lines(backend: str | None = None) -> list[str]:
    from ..sources.midi.ports import Backend

    try:
        be = Backend(backend)
    except Exception as exc:
        return [f"MIDI: unavailable ({_why(exc)})"]
    how = {"auto": "chosen automatically" + (f" ({'; '.join(be.probe_notes)})" if be.probe_notes else ""),
           "MIDO_BACKEND": "from MIDO_BACKEND", "chosen": "as asked"}[be.how]
    lines = [f"MIDI backend: {be.describe()} ({how}; --midi-api to change; compiled APIs: "
             f"{', '.join(be.api_names()) or 'unknown'})"]
    try:
        for direction in ("input", "output"):
            try:
                names = be.names(direction)
            except Exception as exc:
                lines.append(f"  MIDI {direction}s: unavailable ({exc})")
                continue
            lines.append(f"  MIDI {direction}s: {len(names) or 'none'}")
            lines += [f"    {name}" for name in names]
    finally:
        be.close()
    return lines


def audio_lines() -> list[str]:
    try:
        import sounddevice as sd

        apis = [h["name"] for h in sd.query_hostapis()]
        devices = list(sd.query_devices())
    except Exception as exc:  # no PortAudio library, no package, or a broken host API
        return [f"audio: unavailable ({_why(exc)}; pip install sounddevice, and PortAudio: "
                "Debian/Ubuntu libportaudio2)"]
    lines = [f"audio devices: {len(devices) or 'none'}"]
    for i, dev in enumerate(devices):
        api = apis[dev["hostapi"]] if 0 <= dev["hostapi"] < len(apis) else "?"
        lines.append(f"    [{i}] {dev['name']} ({api}; in {dev['max_input_channels']}, "
                     f"out {dev['max_output_channels']}, {dev['default_samplerate']:g} Hz)")
    return lines


def _imports(*modules: str) -> str | None:
    """None if every module imports, else why the first one does not."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            return _why(exc)
    return None


def output_lines() -> list[str]:
    lines = ["outputs:", "    null: available"]
    if sys.platform != "win32":
        lines.append("    spout: not on this OS (Spout is Windows-only)")
    else:
        why = _imports("SpoutGL")
        lines.append("    spout: available" if why is None else f"    spout: unavailable ({why}; pip install SpoutGL)")
    why = _imports("glfw", "moderngl")
    lines.append("    preview: available (needs a display to open)" if why is None
                 else f"    preview: unavailable ({why}; pip install glfw moderngl)")
    why = _imports("NDIlib")
    lines.append("    ndi: available" if why is None else f"    ndi: unavailable ({why}; pip install ndi-python)")
    why = _imports("av")
    for kind in ("record", "takes"):
        lines.append(f"    {kind}: available" if why is None else f"    {kind}: unavailable ({why}; pip install av)")
    return lines


def torch_lines() -> list[str]:
    try:
        import torch

        from ..generator.device import pick_device

        device = pick_device()
        detail = ""
        if device.type == "cuda":
            detail = f" ({torch.cuda.get_device_name(device)})"
        return [f"torch {torch.__version__}: device {device}{detail}"]
    except Exception as exc:
        return [f"torch: unavailable ({_why(exc)})"]


def report(say: Callable[[str], None] = print, *, midi_backend: str | None = None) -> None:
    """Print every section; never raises for a missing subsystem."""
    for section in (lambda: midi_lines(midi_backend), audio_lines, output_lines, torch_lines):
        try:
            lines = section()
        except Exception as exc:  # a probe of ours failed: still show the rest
            lines = [f"(probe failed: {_why(exc)})"]
        for line in lines:
            say(line)
