"""The built-in demo network: deterministic, self-contained, lively, and cheap."""

from __future__ import annotations

import torch

from ganinstrument.generator import load_generator
from ganinstrument.generator.demo import DEMO_KWARGS, build_demo


def _z(n, seed=1):
    return torch.randn(n, DEMO_KWARGS["z_dim"], generator=torch.Generator().manual_seed(seed))


def test_demo_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    from ganinstrument.generator import demo

    a = build_demo()
    demo._STATE = None  # tune again from scratch, not from the per-process copy
    b = build_demo()
    c = build_demo()  # and the cached copy is the same network
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert list(sa) == list(sb) == list(sc)
    assert all(torch.equal(sa[k], sb[k]) and torch.equal(sa[k], sc[k]) for k in sa)
    assert sa["synthesis.b4.conv1.weight"].data_ptr() != sc["synthesis.b4.conv1.weight"].data_ptr()


def test_demo_through_load_generator_renders_in_range():
    G = load_generator("demo", device="cpu")
    assert G.kind == "sg2" and G.img_resolution == 256 and not G.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in G.parameters())
    with torch.no_grad():
        img = G(_z(4), None)  # [4, 3, 256, 256]
    assert img.shape == (4, 3, 256, 256)
    assert torch.isfinite(img).all()
    assert 0.2 < img.std() < 1.0, "the demo's images should fill about [-1, 1]"
    assert img.abs().mean() < 1.0


def test_demo_is_lively_across_z_and_psi():
    G = build_demo()
    z = _z(6)
    with torch.no_grad():
        imgs = G(z, None)  # [6, 3, H, W]
        # Different latents give clearly different pictures (not just noise on one image).
        pairwise = torch.cdist(imgs.flatten(1), imgs.flatten(1))
        off_diag = pairwise[~torch.eye(6, dtype=torch.bool)]
        assert off_diag.min() > 0.2 * imgs.flatten(1).norm(dim=1).mean()
        # psi 0 collapses every latent onto the w_avg image; psi moves continuously between.
        zero = G(z, None, truncation_psi=0)
        assert (zero - zero[:1]).abs().max() < 1e-5
        half = G(z, None, truncation_psi=0.5)
        d_half = (half - zero).flatten(1).norm(dim=1)
        d_full = (imgs - zero).flatten(1).norm(dim=1)
        assert (d_half < d_full).all() and (d_half > 0.1 * d_full).all()


def test_demo_w_avg_is_the_mapping_mean():
    G = build_demo()
    with torch.no_grad():
        w = G.mapping(_z(4096, seed=9), None)[:, 0]  # [S, w_dim]
    # w_avg is estimated from other samples: it agrees with a fresh estimate to sampling error.
    assert (w.mean(0) - G.mapping.w_avg).norm() < 0.1 * w.std(0).norm()
