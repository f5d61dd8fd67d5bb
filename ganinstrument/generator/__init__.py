"""Generators (our own StyleGAN2/StyleGAN3) and the code that loads model files into them.

Public entry points, both importing torch lazily:

- `build_generator(kind, **init_kwargs)`: a random-initialised network from the NVlabs
  constructor arguments (`kind` is "sg2" or "sg3").
- `load_generator(path_or_name, device=None)`: any supported model file, or "demo".
"""

from __future__ import annotations


def build_generator(kind: str, **init_kwargs):
    """Build a random-initialised generator of `kind` ("sg2" or "sg3") from NVlabs kwargs."""
    from .registry import build_generator as _build

    return _build(kind, **init_kwargs)


def load_generator(path_or_name, device=None):
    """Load a generator from a model file (any supported format) or the name "demo"."""
    from .loading import load_generator as _load

    return _load(path_or_name, device=device)


__all__ = ["build_generator", "load_generator"]
