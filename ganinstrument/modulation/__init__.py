"""Per-frame modulation: named values and events from modulation sources (audio features
today) moving targets around the base the faders set.

SIGNALS: every modulation source's signals, which the instrument's registry holds (and
`check --structure-only` checks mappings against without a model).
"""

from .audio import AUDIO_SIGNALS
from .beat import BEAT_SIGNALS

SIGNALS = AUDIO_SIGNALS + BEAT_SIGNALS
