"""Reading music files for offline analysis and rendering: one rule for every caller."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from ..errors import GanInstrumentError

EXTRACTOR_RATES = (22050, 96000)  # the sample rates the feature extractor is made for
FALLBACK_RATE = 48000


class AudioFileError(GanInstrumentError, ValueError):
    """An audio file could not be read; names the file."""


def read_audio(path, *, sample_rate: float | None = None, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Any file libsndfile reads (wav, flac, ogg, mp3) -> samples [frames, channels] and rate.

    Resampled (scipy's polyphase `resample_poly`, exact rational ratio) to `sample_rate` when
    given, else to 48000 Hz only when the file's rate is outside 22050..96000 Hz.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(os.fspath(path), dtype=dtype, always_2d=True)
    except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError/OSError
        raise AudioFileError(f"{path}: cannot read this audio file ({exc})") from None
    target = int(round(sample_rate)) if sample_rate is not None else (
        int(rate) if EXTRACTOR_RATES[0] <= rate <= EXTRACTOR_RATES[1] else FALLBACK_RATE)
    if target != int(rate):
        from scipy.signal import resample_poly

        ratio = Fraction(target, int(rate))
        data = resample_poly(data, ratio.numerator, ratio.denominator, axis=0).astype(dtype)
        rate = target
    return data, int(rate)
