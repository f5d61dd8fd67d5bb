"""The instrument: the scripting facade (facade.Instrument) that assembles the registry, the
state, the scene, the looks (presets and morphs) and the modulation; the show's own actions
(show); and the wiring of a mapping to an instrument.

`ganinstrument.instrument.Instrument` (as before the rooms) is the facade's, imported on first use.
"""


def __getattr__(name):
    if name == "Instrument":
        from .facade import Instrument

        return Instrument
    raise AttributeError(f"module 'ganinstrument.instrument' has no attribute {name!r}")
