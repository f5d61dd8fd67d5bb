"""ganinstrument: a live visual instrument for StyleGAN2/StyleGAN3 models.

Importing the package does no work: no torch import, no device probing, no file access.
`ganinstrument.Instrument` is imported on first use.
"""

__version__ = "0.1.0"

__all__ = ["Instrument", "__version__"]


def __getattr__(name):
    if name == "Instrument":
        from .instrument.facade import Instrument

        return Instrument
    raise AttributeError(f"module 'ganinstrument' has no attribute {name!r}")
