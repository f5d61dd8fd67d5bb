"""Architecture kinds and how to build them from NVlabs constructor arguments."""

from __future__ import annotations

from ..common.errors import ModelLoadError

KINDS = ("sg2", "sg3")


def generator_class(kind: str):
    """The Generator class for `kind` ("sg2" or "sg3")."""
    if kind == "sg2":
        from .stylegan2 import Generator
    elif kind == "sg3":
        from .stylegan3 import Generator
    else:
        raise ModelLoadError(None, f"unknown architecture kind {kind!r}", f"expected one of {', '.join(KINDS)}")
    return Generator


def build_generator(kind: str, **init_kwargs):
    """A random-initialised generator in eval mode, built from NVlabs `init_kwargs`.

    Accepts both spellings NVlabs used: stylegan3's flat `**synthesis_kwargs` and
    stylegan2-ada-pytorch's nested `synthesis_kwargs={...}`.
    """
    kwargs = dict(init_kwargs)
    nested = kwargs.pop("synthesis_kwargs", None)
    if nested:
        kwargs.update(nested)
    G = generator_class(kind)(**kwargs)
    G.eval().requires_grad_(False)
    return G
