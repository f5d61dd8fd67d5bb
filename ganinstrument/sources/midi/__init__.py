"""MIDI: the input (read in a child process, hosted here), ports and their hot-plug, and the
feedback to a controller's LEDs and motor faders."""
