"""Closed-form factorization (scene/sefa.py) and the ws rows of each style (generator/styles.py),
on the demo network, the conformance fixtures and random full-size networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganinstrument.generator import build_generator, load_generator
from ganinstrument.generator.configs import FULL_SIZE
from ganinstrument.generator.demo import build_demo
from ganinstrument.generator.styles import LayerRangeError, layer_range, style_layers
from ganinstrument.scene.sefa import sefa

torch.set_num_threads(2)


@pytest.fixture(scope="module", params=["demo", "sg2_small", "sg3t_small", "sg3r_small", "sg2_cond"])
def network(request, fixtures_dir):
    if request.param == "demo":
        return build_demo().eval()
    return load_generator(fixtures_dir / request.param / "network-stripped.pkl", device="cpu")


def rows_seen(G) -> dict[str, torch.Tensor]:
    """Run the synthesis network on ws whose rows all differ; what each affine was given."""
    seen = {}

    def keep(name):
        def hook(module, args, out):
            seen.setdefault(name, args[0].clone())  # (returns None: the output stays)
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in G.named_modules() if name.endswith(".affine")]
    ws = torch.randn(1, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            G.synthesis(ws, noise_mode="const")
    finally:
        for h in hooks:
            h.remove()
    return {name[:-len(".affine")]: w for name, w in seen.items()}, ws


def test_each_style_reads_the_row_the_forward_pass_gives_it(network):
    seen, ws = rows_seen(network)
    layers = style_layers(network)
    assert sorted(s.name for s in layers) == sorted(seen)  # every modulated layer, once
    for s in layers:
        assert torch.equal(seen[s.name], ws[:, s.ws_index]), s.name
        assert s.weight.shape[1] == network.w_dim
    assert {s.ws_index for s in layers} == set(range(network.num_ws))  # every row drives something


def test_directions_are_the_eigenvectors_of_the_stacked_normalised_styles(network):
    """Against an independent computation from the definition: the right singular vectors of
    the style affines' weights (rows measured by the forward pass above, ToRGB left out, each
    channel's row at unit length), up to sign, for all rows and for a middle range."""
    seen, ws = rows_seen(network)
    for spec in ("all", "middle"):
        start, end = layer_range(spec, network.num_ws)
        weights = []
        for name, module in network.named_modules():
            if not name.endswith(".affine"):
                continue
            layer = name[:-len(".affine")]
            owner = network.get_submodule(layer)
            if layer.endswith(".input") or type(owner).__name__ == "ToRGBLayer" or getattr(owner, "is_torgb", False):
                continue  # (the input transform and ToRGB: not the styles SeFa reads)
            row = next(i for i in range(network.num_ws) if torch.equal(seen[layer], ws[:, i]))
            if start <= row < end:
                weights.append(module.weight.detach().double().numpy())
        A = np.concatenate(weights)
        A = A / np.linalg.norm(A, axis=1, keepdims=True)
        _, sv, vt = np.linalg.svd(A, full_matrices=False)
        f = sefa(network, spec)
        sg3_input = start == 0 and hasattr(network.synthesis, "input")  # (row 0 turns StyleGAN3's input)
        assert f.layers == (1 if sg3_input else start, end)
        assert f.directions.shape == (network.w_dim, network.w_dim)
        np.testing.assert_allclose(np.linalg.norm(f.directions, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(f.directions @ f.directions.T, np.eye(network.w_dim), atol=1e-4)
        assert np.all(np.diff(f.eigenvalues) <= 1e-9)
        np.testing.assert_allclose(f.eigenvalues, sv ** 2, rtol=1e-6, atol=1e-8)
        # eigenvectors are defined up to sign where the eigenvalue is simple: compare those
        gap = np.minimum(np.abs(np.diff(sv ** 2, prepend=np.inf)), np.abs(np.diff(sv ** 2, append=-np.inf)))
        simple = gap > 1e-6 * sv[0] ** 2
        dots = np.abs(np.sum(f.directions.astype(np.float64) * vt, axis=1))
        np.testing.assert_allclose(dots[simple], 1.0, atol=1e-4)
        assert simple[:5].all()  # (the leading ones, the ones a performer uses, are compared)


def test_the_same_network_gives_the_same_directions_and_signs():
    G = build_demo().eval()
    a, b = sefa(G, "coarse", count=5), sefa(build_demo().eval(), "coarse", count=5)
    assert np.array_equal(a.directions, b.directions) and a.directions.shape == (5, G.w_dim)
    top = np.abs(a.directions).argmax(axis=1)
    assert np.all(a.directions[np.arange(5), top] > 0)


def test_layer_ranges():
    assert layer_range("all", 18) == (0, 18)
    assert [layer_range(n, 18) for n in ("coarse", "middle", "fine")] == [(0, 4), (4, 8), (8, 18)]
    assert [layer_range(n, 14) for n in ("coarse", "middle", "fine")] == [(0, 3), (3, 6), (6, 14)]
    assert layer_range("2-5", 14) == (2, 6) and layer_range(" 7 ", 14) == (7, 8)
    for bad in ("0-14", "5-2", "-1", "x", "", "3-", "coarse-fine", "1.5"):
        with pytest.raises(LayerRangeError, match="layer range"):
            layer_range(bad, 14)


@pytest.mark.parametrize("name", ["sg2-1024-f", "sg3t-1024"])
def test_full_size_networks_factorize(name):
    """Random networks of the real size: the last row of StyleGAN2 is ToRGB's alone, and is
    still factorized; StyleGAN3's row 0 (the input transform) drives no style."""
    kind, kwargs = FULL_SIZE[name]
    G = build_generator(kind, **kwargs).eval()
    f = sefa(G, "fine", count=8)
    assert f.directions.shape == (8, 512) and np.all(np.diff(f.eigenvalues) <= 1e-9)
    last = sefa(G, f"{G.num_ws - 1}", count=3)
    assert np.isfinite(last.directions).all() and last.eigenvalues[0] > 0
    if kind == "sg3":
        with pytest.raises(ValueError, match="drive no style"):
            sefa(G, "0")
