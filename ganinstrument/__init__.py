"""ganinstrument: a live visual instrument for StyleGAN2/StyleGAN3 models.

Importing the package does no work: no torch import, no device probing, no file access.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
