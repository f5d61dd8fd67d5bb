"""The targets' declarations (params: TargetSpec, ActionSpec, Registry), their values and
smoothing (values, smoothing), and presets (the look saved to and recalled from files)."""
