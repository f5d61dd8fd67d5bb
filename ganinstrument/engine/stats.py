"""What the engine reports: a frame's phase timings and the engine's counters, as frozen
snapshots (`Engine.stats`, the `on_frame` observers)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass


@dataclass(frozen=True)
class FrameTimes:
    """Where one frame's time went, in seconds."""

    input_s: float = 0.0  # the controls: drain MIDI, OSC, keys and recorded controls, route, apply
    modulation_s: float = 0.0  # every modulation source read (audio features) and fed to the modulation
    render_s: float = 0.0  # Instrument.step: smooth, modulate, scene, render (queued, on CUDA)
    submit_s: float = 0.0  # the frame handed to every sink
    total_s: float = 0.0  # the whole frame, the HUD and logs included
    gpu_wait_s: float = 0.0  # (CUDA) waiting for the frame before the last to finish


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's counters (`Engine.stats`)."""

    frames: int = 0  # frames out (a pre-roll's frames, which draw nothing, are not counted)
    rendered: int = 0  # frames the network drew (the others repeat an unchanged picture)
    errors: int = 0
    last_error: str = ""
    frame_ms: float = 0.0
    fps: float = 0.0
    events: int = 0
    last_touched: str = ""
    closed: bool = False  # every part stopped within its time when the engine closed
    times: FrameTimes = FrameTimes()  # of the last frame


# The engine thread's own counters, of which `Engine.stats` is a frozen copy: EngineStats'
# fields, writable.
Running = make_dataclass("Running", [(f.name, f.type, field(default=f.default, default_factory=f.default_factory))
                                     for f in fields(EngineStats)])
