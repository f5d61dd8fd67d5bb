"""Our StyleGAN3 generator against the NVlabs conformance fixtures (sg3t_small, sg3r_small)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from ganinstrument.generator import build_generator, sg3_ops

NAMES = ["sg3t_small", "sg3r_small"]


class Fixture:
    def __init__(self, folder):
        self.config = json.loads((folder / "config.json").read_text())
        self.weights = load_file(str(folder / "weights.safetensors"))
        self.cases = load_file(str(folder / "cases.safetensors"))
        self.inter = load_file(str(folder / "intermediates.safetensors"))
        self.G = build_generator("sg3", **self.config["init_kwargs"])
        self.designed = {k: v.clone() for k, v in self.G.state_dict().items() if k.endswith("_filter")}
        self.G.load_state_dict(self.weights, strict=True)


@pytest.fixture(scope="module", params=NAMES)
def fx(request, fixtures_dir):
    torch.set_num_threads(2)
    return Fixture(fixtures_dir / request.param)


def image_tol(ref):
    return 1e-4 * max(1.0, ref.abs().max().item())


def test_state_dict_layout(fx):
    expected = [(e["key"], e["shape"]) for e in fx.config["state_dict"]]
    got = [(k, list(v.shape)) for k, v in fx.G.state_dict().items()]
    assert got == expected
    for key in fx.config["buffers_registered_as_None"]:
        assert key not in fx.G.state_dict()
    assert all(v.dtype == torch.float32 for v in fx.G.state_dict().values())


def test_attributes(fx):
    G, cfg = fx.G, fx.config
    assert G.kind == "sg3"
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws) == (cfg["z_dim"], cfg["c_dim"], cfg["w_dim"], cfg["num_ws"])
    assert (G.img_resolution, G.img_channels) == (cfg["img_resolution"], cfg["img_channels"])
    assert json.loads(json.dumps(G.init_kwargs)) == cfg["init_kwargs"]
    assert "L0_" in repr(G) and "padding=" in repr(G)


def test_geometry_matches_config(fx):
    syn = fx.G.synthesis
    inp = fx.config["input"]
    assert syn.input.channels == inp["channels"]
    assert syn.input.size == inp["size"]
    assert syn.input.sampling_rate == pytest.approx(inp["sampling_rate"])
    assert syn.input.bandwidth == pytest.approx(inp["bandwidth"])
    assert syn.output_scale == fx.config["output_scale"]
    assert ["synthesis." + n for n in syn.tap_names()[1:]] == [lay["name"] for lay in fx.config["layers"]]
    for ref in fx.config["layers"]:
        got = getattr(syn, ref["name"].split(".", 1)[1]).geometry()
        for key, value in ref.items():
            if key == "name":
                continue
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-12), (ref["name"], key)
            else:
                assert got[key] == value, (ref["name"], key)


def test_designed_filters_match_stored(fx):
    assert fx.designed.keys() == {k for k in fx.weights if k.endswith("_filter")}
    for key, designed in fx.designed.items():
        stored = fx.weights[key]
        assert designed.shape == stored.shape, key
        torch.testing.assert_close(designed, stored, rtol=0, atol=1e-7, msg=key)


CASES = [
    ("psi1", dict()),
    ("psi0.7", dict(truncation_psi=0.7)),
    ("psi0.7_cutoff4", dict(truncation_psi=0.7, truncation_cutoff=4)),
]


@pytest.mark.parametrize("case,kwargs", CASES, ids=[c for c, _ in CASES])
def test_mapping_and_synthesis_cases(fx, case, kwargs):
    z = fx.cases["z"]
    with torch.no_grad():
        ws = fx.G.mapping(z, torch.zeros([z.shape[0], 0]), **kwargs)
        torch.testing.assert_close(ws, fx.cases[f"{case}.ws"], rtol=0, atol=1e-5)
        img = fx.G.synthesis(fx.cases[f"{case}.ws"], noise_mode="const", force_fp32=True)
    ref = fx.cases[f"{case}.img"]
    torch.testing.assert_close(img, ref, rtol=0, atol=image_tol(ref))


def test_full_forward_equals_mapping_then_synthesis(fx):
    z = fx.cases["z"][:2]
    with torch.no_grad():
        img = fx.G(z, None, truncation_psi=0.7, truncation_cutoff=4)
    ref = fx.cases["psi0.7_cutoff4.img"][:2]
    torch.testing.assert_close(img, ref, rtol=0, atol=image_tol(ref))


def test_style_mixing_case(fx):
    with torch.no_grad():
        img = fx.G.synthesis(fx.cases["mix_cols4.ws"])
    ref = fx.cases["mix_cols4.img"]
    torch.testing.assert_close(img, ref, rtol=0, atol=image_tol(ref))


def test_user_input_transform(fx):
    G = fx.G
    identity = G.synthesis.input.transform.clone()
    try:
        G.synthesis.input.transform.copy_(fx.cases["psi1_transform.input_transform"])
        with torch.no_grad():
            img = G.synthesis(fx.cases["psi1.ws"])
    finally:
        G.synthesis.input.transform.copy_(identity)
    ref = fx.cases["psi1_transform.img"]
    torch.testing.assert_close(img, ref, rtol=0, atol=image_tol(ref))


def test_batch_one_matches_batch(fx):
    """Batch 1 folds styles into the weights, batch N scales activations: same result."""
    ws = fx.cases["psi1.ws"]
    with torch.no_grad():
        one = fx.G.synthesis(ws[2:3])
    ref = fx.cases["psi1.img"][2:3]
    torch.testing.assert_close(one, ref, rtol=0, atol=image_tol(ref))


def test_intermediates(fx):
    syn = fx.G.synthesis
    ws = fx.cases["psi1.ws"][:1]
    with torch.no_grad():
        torch.testing.assert_close(fx.G.mapping(fx.cases["z"][:1], None), fx.inter["mapping"], rtol=0, atol=1e-5)
        for tap in syn.tap_names():
            x = syn(ws, until=tap).double()  # [1, C, H, W]
            key = f"synthesis.{tap}"
            if key in fx.inter:
                ref = fx.inter[key].double()
                torch.testing.assert_close(x, ref, rtol=0, atol=image_tol(ref), msg=tap)
                continue
            ref = fx.inter[f"{key}.ch0_8"].double()
            torch.testing.assert_close(x[:, :8], ref, rtol=0, atol=image_tol(ref), msg=tap)
            scale = max(1.0, x.abs().max().item())
            torch.testing.assert_close(x.mean(dim=[0, 2, 3]), fx.inter[f"{key}.chan_mean"].double(), rtol=0, atol=1e-5 * scale, msg=tap)
            torch.testing.assert_close(x.square().mean(dim=[0, 2, 3]), fx.inter[f"{key}.chan_meansq"].double(), rtol=1e-5, atol=1e-5 * scale, msg=tap)
        img = syn(ws)
    torch.testing.assert_close(img, fx.inter["synthesis"], rtol=0, atol=image_tol(fx.inter["synthesis"]))


def test_taps_and_errors(fx):
    syn = fx.G.synthesis
    names = syn.tap_names()
    assert names[0] == "input" and names == syn.layer_names() and len(names) == fx.G.num_ws
    ws = fx.cases["psi1.ws"][:1]
    with torch.no_grad():
        a = syn(ws, until=names[3])
        b = syn(ws, until="synthesis." + names[3])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="valid names: input, L0_"):
        syn(ws, until="L99_1_1")
    with pytest.raises(ValueError, match=r"ws must be"):
        syn(ws[:, :3])
    with pytest.raises(ValueError, match="noise_mode"):
        syn(ws, noise_mode="loud")
    with pytest.raises(ValueError, match="z must be"):
        fx.G.mapping(torch.zeros(1, 3), None)


# ----------------------------------------------------------------------------------------------
# Building blocks, independent of the fixtures


@pytest.mark.parametrize(
    "up,down,taps_up,taps_down,radial,padding,size",
    [
        (2, 2, 12, 12, False, (9, 8, 9, 8), 11),
        (2, 2, 12, 12, True, (11, 10, 11, 10), 9),
        (4, 2, 24, 12, False, (-6, -9, -6, -9), 20),
        (2, 2, 12, 12, False, (-11, -12, -11, -12), 30),
        (2, 2, 12, 12, False, (3, 14, 12, 5), 8),  # asymmetric
        (2, 2, 12, 12, False, (-20, 0, 0, -20), 26),  # crop beyond the filter on one side
        (2, 1, 12, 1, False, (1, 2, 0, 3), 7),
        (1, 2, 1, 12, False, (4, 5, 5, 4), 9),
    ],
)
def test_filtered_lrelu_matches_literal_reference(up, down, taps_up, taps_down, radial, padding, size):
    gen = torch.Generator().manual_seed(up * 100 + size)
    x = torch.randn([2, 3, size, size + 1], generator=gen) * 3
    b = torch.randn([3], generator=gen)
    fu = sg3_ops.design_lowpass_filter(taps_up, 3.0, 4.0, 16.0 * up)
    fd = sg3_ops.design_lowpass_filter(taps_down, 5.0, 3.0, 16.0 * up, radial=radial)
    kw = dict(up=up, down=down, padding=padding, gain=math.sqrt(2), slope=0.2, clamp=1.5)
    fast = sg3_ops.filtered_lrelu(x.contiguous(memory_format=torch.channels_last), fu, fd, b, **kw)
    ref = sg3_ops.filtered_lrelu_reference(x, fu, fd, b, **kw)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=0, atol=2e-5)


def test_filter_design_properties():
    f = sg3_ops.design_lowpass_filter(12, 4.0, 8.0, 32.0)
    assert f.shape == (12,) and torch.allclose(f, f.flip(0)) and abs(f.sum().item() - 1) < 1e-6
    r = sg3_ops.design_lowpass_filter(12, 4.0, 8.0, 32.0, radial=True)
    assert r.shape == (12, 12) and torch.allclose(r, r.t()) and abs(r.sum().item() - 1) < 1e-6
    odd = sg3_ops.design_lowpass_filter(13, 4.0, 8.0, 32.0, radial=True)  # has a tap at r = 0
    assert torch.isfinite(odd).all()
    assert sg3_ops.design_lowpass_filter(1, 4.0, 8.0, 32.0) is None


def test_unknown_kwargs_warn_and_extra_state():
    kwargs = dict(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                  mapping_kwargs=dict(num_layers=2, fork_option=1), some_fork_flag=True)
    with pytest.warns(UserWarning) as record:
        G = build_generator("sg3", **kwargs)
    messages = " ".join(str(r.message) for r in record)
    assert "some_fork_flag" in messages and "fork_option" in messages
    assert G.init_kwargs["some_fork_flag"] is True
    assert "mapping.embed.weight" in G.state_dict()
    z, c = torch.randn(2, 8), torch.eye(2)
    with torch.no_grad():
        img = G(z, c)
        assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
        with pytest.raises(ValueError, match="c must be"):
            G(z, None)
        layer = getattr(G.synthesis, G.synthesis.tap_names()[1])
        before = layer.magnitude_ema.clone()
        G(z, c, update_emas=True)
        assert not torch.equal(before, layer.magnitude_ema)


def test_gradients_flow_when_trainable():
    """A directly built (trainable) network supports backward: no in-place op breaks autograd."""
    from ganinstrument.generator.stylegan3 import Generator

    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    z = torch.randn(2, 8, requires_grad=True)
    G(z, None, truncation_psi=0.5, truncation_cutoff=3).square().mean().backward()
    layer = getattr(G.synthesis, G.synthesis.tap_names()[1])
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
