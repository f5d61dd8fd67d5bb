"""The scene: what turns one frame's values into a picture.

It owns the latent scene (seeds, z groups, psi, mixing, directions: scene.latent), the bender
(weight edits and the blend toward a second network: scene.bending), the activation bends
(transforms of a layer's feature maps, hooked in only while active: scene.activations), the view (the image or
one layer's activations) and the noise mode, and declares their targets and actions for the
registry. Per frame the instrument hands it a frozen RenderParams (every value of that frame,
smoothed and modulated); `update` rewrites the weights the values edit, `render` draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from ..common.frame import Frame
from ..generator.stylegan2 import NOISE_MODES
from ..generator.taps import image_to_uint8, tap_to_uint8
from ..state.params import ActionSpec, TargetSpec
from .activations import ActivationBender
from .bending import Bender
from .latent import LatentConfig, LatentScene


@dataclass(frozen=True)
class RenderParams:
    """Every value the scene needs for one frame: each target's value (smoothed, modulated;
    read-only) and the instrument's time."""

    values: Mapping[str, float]
    time_s: float

    @classmethod
    def of(cls, values: Mapping[str, float], time_s: float) -> RenderParams:
        return cls(MappingProxyType(dict(values)), float(time_s))

    @property
    def view(self) -> int:
        """0: the image; k: the activations of tap k - 1."""
        return int(self.values["view"])

    @property
    def noise(self) -> str:
        return NOISE_MODES[int(self.values["noise"])]


class Scene:
    """One network (and optionally a second one to blend toward) made playable.

    `G`, `G_b`: generators; `latent`: its layout (LatentConfig); `edits`: None for one default
    edit per layer or block, or a list of EditSpec; `name_a`, `name_b`: the models' names, in
    the bender's messages.
    """

    def __init__(self, G, G_b=None, *, latent: LatentConfig | None = None, edits=None, device=None,
                 name_a: str = "model A", name_b: str = "model B"):
        self.G = G
        self.latent = LatentScene(G, latent or LatentConfig(), device=device)
        self.bender = Bender(G, G_b, edits, name_a=name_a, name_b=name_b)
        self.activations = ActivationBender(G, as_loaded=self.bender.as_loaded)
        self.taps = tuple(G.synthesis.tap_names())

    def targets(self) -> list[TargetSpec]:
        """The view, the noise, the latent scene's and the bender's targets."""
        return [
            TargetSpec("view", 0, len(self.taps), 0, kind="choice", smoothing="none", smoothing_ms=0.0,
                       choices=("image",) + self.taps, doc="what is shown: the image or a layer's activations"),
            TargetSpec("noise", 0, 2, 0, kind="choice", smoothing="none", smoothing_ms=0.0, choices=NOISE_MODES,
                       doc="StyleGAN2 per-pixel noise: const (stable), random (shimmers), none"),
            *self.latent.targets(), *self.bender.targets(), *self.activations.targets()]

    def actions(self) -> list[ActionSpec]:
        return list(self.latent.actions())

    def update(self, values: Mapping[str, float]) -> bool:
        """Rewrite the weights whose edit or blend moved; True if any was."""
        rewritten = self.bender.apply(values)
        if any(key.startswith("mapping.") for key in rewritten):
            self.latent.invalidate()  # the mapping network changed: its cached ws are stale
        return bool(rewritten)

    @staticmethod
    def animated(params: RenderParams) -> bool:
        """Whether the picture changes with nothing moving (random noise shimmers)."""
        return params.noise == "random"

    def render(self, params: RenderParams, index: int) -> Frame:
        """Draw `params` as frame number `index`."""
        view = params.view
        self.activations.update(params.values)  # (hooks in or out: none while every bend is neutral)
        with torch.no_grad():
            ws = self.latent.ws(params.values)  # [1, num_ws, w_dim]
            if view == 0:
                img = self.G.synthesis(ws, noise_mode=params.noise)  # [1, C, H, W]
                if img.shape[1] == 1:
                    img = img.expand(-1, 3, -1, -1)
                pixels = image_to_uint8(img[:, :3])[0]  # [H, W, 3]
            else:
                act = self.G.synthesis(ws, noise_mode=params.noise, until=self.taps[view - 1])  # [1, C, h, w]
                pixels = tap_to_uint8(act, mode="project")[0]
        return Frame(pixels, params.time_s, index)
