"""Audio features as a modulation source: the first of them.

Its signals (the names a mapping's modulation routes follow, with the input range that maps
to 0..1 unless a route gives its own) are AUDIO_SIGNALS; `AudioFeatures` turns a feature
source's newest Features and onsets (modulation.source.FeatureSource: the live AudioInput, or
the offline BlockSource) into a Reading each frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..state.params import SignalSpec
from .source import Event, FeatureSource, Reading

SOURCE = "audio"
_VALUES = (
    ("onset_strength", (0.0, 1.0), "spectral flux mapped to 0..1 (0: silence and steady sound)"),
    ("rms_db", (-60.0, 0.0), "loudness of the last ~21 ms, dBFS"),
    ("pitch_hz", (55.0, 1760.0), "pitch in Hz (none while unvoiced)"),
    ("pitch_note", (36.0, 96.0), "pitch as a MIDI note number (69 = A4)"),
    ("pitch_class", (0.0, 11.0), "the nearest note, 0..11 (C = 0)"),
    ("pitch_confidence", (0.0, 1.0), "how sure the pitch tracker is that there is a pitch"),
    ("bands.low", (0.0, 1.0), "RMS amplitude of the low band (kick, bass)"),
    ("bands.mid", (0.0, 1.0), "RMS amplitude of the mid band"),
    ("bands.high", (0.0, 1.0), "RMS amplitude of the high band (hats, cymbals)"),
)
_EVENTS = (
    ("onset", "an onset (any attack)"),
    ("onset.low", "an onset in the low band (kick, bass)"),
    ("onset.mid", "an onset in the mid band"),
    ("onset.high", "an onset in the high band (hats, cymbals)"),
)
AUDIO_SIGNALS = tuple(SignalSpec(name, SOURCE, input_range=rng, doc=doc) for name, rng, doc in _VALUES) + \
    tuple(SignalSpec(name, SOURCE, event=True, doc=doc) for name, doc in _EVENTS)
VALUE_NAMES = tuple(name for name, _, _ in _VALUES)
_BANDS = {"bands.low": 0, "bands.mid": 1, "bands.high": 2}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def feature_value(features: Any, name: str) -> float | None:
    """The signal `name` ("rms_db", "bands.low", ...) read from a Features object (or a dict
    keyed by those names or Features' fields); None when absent, unvoiced or not finite."""
    try:
        if isinstance(features, Mapping):
            if name in features:
                return _number(features[name])
            if name in _BANDS:
                return _number(features["bands"][_BANDS[name]])
            return _number(features.get(name))
        if name in _BANDS:
            return _number(features.bands[_BANDS[name]])
        return _number(getattr(features, name, None))
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _event_name(kind: str) -> str:
    """"onset_low" (a Features field, an OnsetEvent's kind) and "onset.low" are the same event."""
    return kind.replace("_", ".", 1) if kind.startswith("onset_") and kind != "onset_strength" else kind


def reading_of(features: Any, onsets: Iterable[Any] = ()) -> Reading:
    """A Reading of the newest Features (None: no input at all) and the onsets since the last
    frame (objects with `kind` and `time_s`, e.g. OnsetEvent, or dicts with those keys)."""
    events = []
    for onset in onsets:
        kind = onset.get("kind") if isinstance(onset, Mapping) else getattr(onset, "kind", None)
        t = onset.get("time_s") if isinstance(onset, Mapping) else getattr(onset, "time_s", None)
        if isinstance(kind, str):
            events.append(Event(_event_name(kind), _number(t)))
    if features is None:
        return Reading(dict.fromkeys(VALUE_NAMES), tuple(events), silent=True)
    return Reading({name: feature_value(features, name) for name in VALUE_NAMES}, tuple(events))


class AudioFeatures:
    """A feature source (live AudioInput, offline BlockSource) as a modulation source."""

    name = SOURCE

    def __init__(self, source: FeatureSource):
        self.source = source

    @property
    def messages(self):
        return self.source.messages

    def read(self, t: float | None = None) -> Reading:  # (the newest features, whatever the time)
        return reading_of(self.source.latest(), self.source.drain_onsets())

    def hud_lines(self) -> dict[str, str]:
        """The level now, with * on an onset; or why there is none (the input's own line)."""
        features = self.source.latest()
        if features is None:
            return dict(self.source.hud_lines())
        return {"audio": f"{features.rms_db:.0f} dB" + (" *" if features.onset else "")}

    def stop(self, timeout_s: float = 2.0) -> bool:
        return self.source.stop(timeout_s)
