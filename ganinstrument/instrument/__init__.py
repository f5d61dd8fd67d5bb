"""The instrument: the scripting facade (facade.Instrument) that assembles the registry, the
state, the scene, the presets and the modulation; the show's own actions (show); preset morphs; and
the wiring of a mapping to an instrument."""
