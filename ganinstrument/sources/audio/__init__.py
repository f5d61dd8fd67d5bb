"""Audio: the live input, the offline block source, the streaming feature extractors (onsets,
pitch, loudness, bands) and audio files."""
