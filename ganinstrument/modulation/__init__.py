"""Per-frame modulation: named values and events from modulation sources (audio features
today) moving targets around the base the faders set."""
