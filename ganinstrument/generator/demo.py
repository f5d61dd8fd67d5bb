"""The built-in demo network: a small, untrained StyleGAN2, the same on every machine.

It lets a performer try controllers, mappings and outputs before loading a real model, on any
laptop, with no file and no download. The weights come from a fixed seed, then a few
deterministic adjustments make an untrained network worth looking at:

- the ToRGB layers of the finer blocks are amplified, so detail shows instead of only the
  4x4 and 8x8 blobs an untrained skip generator is dominated by;
- the per-pixel noise inputs get a small strength, for texture;
- `w_avg` is set to the mean of the mapping output, so truncation psi moves the picture
  toward a real "average" image (psi 0) instead of toward zero;
- the output is scaled and centred so that images sit in about [-1, 1] around grey.

All of this is computed, not stored: building takes well under a second.
"""

from __future__ import annotations

import torch

DEMO_SEED = 20261122
DEMO_KWARGS = dict(
    z_dim=64, w_dim=64, c_dim=0, img_resolution=256, img_channels=3,
    channel_base=2048, channel_max=64, num_fp16_res=0, conv_clamp=256,
    mapping_kwargs=dict(num_layers=4),
)
_TORGB_GAIN_PER_OCTAVE = 1.25  # finer blocks louder: 4x4 x1, 8x8 x1.25, ..., 256x256 x3.8
_NOISE_STRENGTH = 0.02
_W_AVG_SAMPLES = 2048


def _tune(G) -> None:
    synthesis = G.synthesis
    gen = torch.Generator().manual_seed(DEMO_SEED + 1)
    for i, name in enumerate(synthesis.block_names()):
        block = getattr(synthesis, name)
        torgb = getattr(block, "torgb", None)
        if torgb is not None:
            torgb.weight.mul_(_TORGB_GAIN_PER_OCTAVE**i)
            torgb.bias.zero_()  # random colour offsets only tint every image the same way
        for layer_name in ("conv0", "conv1"):
            layer = getattr(block, layer_name, None)
            if layer is not None and hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(_NOISE_STRENGTH)
    z = torch.randn(_W_AVG_SAMPLES, G.z_dim, generator=gen)
    w = G.mapping(z, None, truncation_psi=1)[:, 0]  # [S, w_dim]
    G.mapping.w_avg.copy_(w.mean(dim=0))
    # Normalise the output level over a few latents: about [-1, 1] after the last ToRGB.
    img = G(z[:8], None, noise_mode="const")  # [8, 3, H, W]
    scale = 0.6 / float(img.std().clamp_min(1e-6))
    last = None
    for name in synthesis.block_names():
        torgb = getattr(getattr(synthesis, name), "torgb", None)
        if torgb is not None:
            torgb.weight.mul_(scale)
            last = torgb
    # Centre the average colour on grey, so no single hue tints every latent.
    last.bias.sub_(img.mean(dim=(0, 2, 3)) * scale)


_STATE: dict[str, torch.Tensor] | None = None  # the tuned weights, computed once per process


def build_demo():
    """The demo generator (StyleGAN2, 256x256, 64-d latents), in eval mode on the CPU.

    Every call returns a new network (callers edit weights in place); the tuned weights are
    computed on the first call and copied after that.
    """
    global _STATE
    from .registry import build_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        G = build_generator("sg2", **DEMO_KWARGS)
    with torch.no_grad():
        if _STATE is None:
            _tune(G)
            _STATE = {k: v.clone() for k, v in G.state_dict().items()}
        else:
            G.load_state_dict(_STATE)
    G.load_notes = ["built-in demo network: untrained, deterministic (seed %d)" % DEMO_SEED]
    return G
