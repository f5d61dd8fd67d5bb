"""The live frame loop (loop.Engine) and its HUD: drains the sources, applies the controls,
feeds the modulation, steps the instrument, hands the frame to the sinks."""
