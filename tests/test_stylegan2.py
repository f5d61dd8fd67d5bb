"""Our StyleGAN2 generator against outputs of the official NVlabs code (../shared/fixtures)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ganinstrument.generator import build_generator

FIXTURES = ["sg2_small", "sg2_cond", "sg2ada_small"]
CASES = [  # (case key, truncation_psi, truncation_cutoff)
    ("psi1", 1, None),
    ("psi0.7", 0.7, None),
    ("psi0.7_cutoff4", 0.7, 4),
]


def _close(actual: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    assert actual.shape == ref.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    err = (actual.float() - ref).abs().max().item()
    assert err <= tol, f"{name}: max |diff| {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module", params=FIXTURES)
def net(request, fixtures_dir):
    folder = fixtures_dir / request.param
    config = json.loads((folder / "config.json").read_text())
    G = build_generator("sg2", **config["init_kwargs"])
    G.load_state_dict(load_file(folder / "weights.safetensors"), strict=True)
    cases = load_file(folder / "cases.safetensors")
    # Unconditional fixtures store no c: the official scripts pass an empty [N, 0] tensor.
    c = cases.get("c", torch.zeros([cases["z"].shape[0], 0]))
    return G, config, cases, c, folder


def test_state_dict_matches_nvlabs(net):
    G, config, _, _, _ = net
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in G.state_dict().items()]
    theirs = [(e["key"], e["shape"], e["dtype"]) for e in config["state_dict"]]
    assert ours == theirs
    assert G.num_ws == config["num_ws"]
    assert (G.z_dim, G.c_dim, G.w_dim) == (config["z_dim"], config["c_dim"], config["w_dim"])
    assert (G.img_resolution, G.img_channels) == (config["img_resolution"], config["img_channels"])
    assert json.loads(json.dumps(G.init_kwargs))["mapping_kwargs"] == config["init_kwargs"]["mapping_kwargs"]


@pytest.mark.parametrize("key,psi,cutoff", CASES)
def test_mapping_and_synthesis(net, key, psi, cutoff):
    G, _, cases, c, _ = net
    with torch.no_grad():
        ws = G.mapping(cases["z"], c, truncation_psi=psi, truncation_cutoff=cutoff)
        assert (ws - cases[f"{key}.ws"]).abs().max().item() <= 1e-5
        _close(G.synthesis(cases[f"{key}.ws"], noise_mode="const", force_fp32=True), cases[f"{key}.img"], key)
        if key == "psi1":
            img = G(cases["z"], c, truncation_psi=psi, truncation_cutoff=cutoff, noise_mode="const")
            _close(img, cases[f"{key}.img"], f"{key} full forward")


@pytest.mark.parametrize("key,kwargs", [
    ("mix_cols4", dict(ws="mix_cols4.ws")),
    ("psi1_noise_none", dict(ws="psi1.ws", noise_mode="none")),
    ("psi1_nonfused", dict(ws="psi1.ws", fused_modconv=False)),
])
def test_synthesis_variants(net, key, kwargs):
    G, _, cases, _, _ = net
    kwargs = dict(kwargs)
    ws = cases[kwargs.pop("ws")]
    with torch.no_grad():
        _close(G.synthesis(ws, **kwargs), cases[f"{key}.img"], key)


def test_batch_of_one_matches(net):
    G, _, cases, _, _ = net
    with torch.no_grad():
        _close(G.synthesis(cases["psi1.ws"][1:2]), cases["psi1.img"][1:2], "batch 1")


def test_taps_match_intermediates(net):
    G, _, _, _, folder = net
    inter = load_file(folder / "intermediates.safetensors")
    with torch.no_grad():
        for name, ref in inter.items():
            if name == "mapping":
                continue
            if name == "synthesis":
                _close(G.synthesis(inter["mapping"]), ref, name)
                continue
            _close(G.synthesis(inter["mapping"], until=name), ref, name)
        names = G.synthesis.tap_names()
        assert names[:4] == ["b4.conv1", "b4.torgb", "b4.img", "b4"]
        _close(G.synthesis(inter["mapping"], until="b8"), inter["synthesis.b8.x"], "b8")


def test_unknown_tap_lists_valid_names(net):
    G, _, _, _, _ = net
    ws = torch.zeros([1, G.num_ws, G.w_dim])
    with pytest.raises(ValueError, match="b8.conv0"):
        G.synthesis(ws, until="b8.nope")


def test_noise_modes(net):
    G, _, cases, _, _ = net
    ws = cases["psi1.ws"][:2]
    with torch.no_grad():
        const = G.synthesis(ws, noise_mode="const")
        rand = G.synthesis(ws, noise_mode="random")
    assert rand.shape == const.shape
    assert torch.isfinite(rand).all()
    assert (rand - const).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")


def test_block_names():
    G = build_generator("sg2", z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3,
                        channel_base=64, channel_max=8)
    assert G.synthesis.block_names() == ["b4", "b8", "b16", "b32"]


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("batch", [1, 3])
def test_architectures_run(architecture, batch):
    G = build_generator("sg2", z_dim=16, c_dim=3, w_dim=16, img_resolution=32, img_channels=4,
                        mapping_kwargs={"num_layers": 2}, channel_base=128, channel_max=16,
                        architecture=architecture, conv_clamp=256)
    if architecture == "resnet":
        assert "synthesis.b8.skip.weight" in G.state_dict()
        assert "synthesis.b8.torgb.weight" not in G.state_dict()
    z, c = torch.randn(batch, 16), torch.eye(3)[:batch]
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.5)
        nonfused = G(z, c, truncation_psi=0.5, fused_modconv=False)
    assert img.shape == (batch, 4, 32, 32)
    assert torch.isfinite(img).all()
    torch.testing.assert_close(img, nonfused, rtol=1e-4, atol=1e-4)
    assert G.synthesis.tap_names()[-1] == "b32"
    print(G)  # extra_repr must not fail


def test_bad_arguments():
    base = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    with pytest.raises(TypeError, match="bogus"):
        build_generator("sg2", bogus=1, **base)
    with pytest.raises(ValueError, match="power of two"):
        build_generator("sg2", **{**base, "img_resolution": 48})
    with pytest.raises(ValueError, match="architecture"):
        build_generator("sg2", architecture="unet", **base)
    G = build_generator("sg2", **base)
    with pytest.raises(ValueError, match="z must have shape"):
        G(torch.zeros(1, 9))
    with pytest.raises(ValueError, match="unconditional"):
        G(torch.zeros(1, 8), torch.zeros(1, 2))
    assert G(torch.zeros(1, 8), None).shape == (1, 3, 16, 16)


def test_fp16_request_is_float32_on_cpu():
    kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, channel_base=128, channel_max=16,
                  conv_clamp=256)
    G16 = build_generator("sg2", num_fp16_res=4, **kwargs)
    G32 = build_generator("sg2", num_fp16_res=0, **kwargs)
    G32.load_state_dict(G16.state_dict())
    assert [getattr(G16.synthesis, b).use_fp16 for b in G16.synthesis.block_names()] == [False, True, True, True]
    z = torch.randn(2, 8)
    with torch.no_grad():
        img = G16(z)
        assert img.dtype == torch.float32
        assert torch.equal(img, G32(z))
        assert torch.equal(img, G16(z, force_fp32=True))


def test_gradients_flow_when_asked():
    from ganinstrument.generator.stylegan2 import Generator

    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64, channel_max=8)
    G(torch.randn(1, 8)).square().mean().backward()
    assert G.synthesis.b16.conv1.weight.grad is not None


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
@pytest.mark.parametrize("fused", [True, False])
def test_gradients_reach_ws(architecture, fused):
    G = build_generator("sg2", z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=64,
                        channel_max=8, conv_clamp=256, architecture=architecture)
    ws = torch.randn(2, G.num_ws, 8, requires_grad=True)  # e.g. projecting an image into W
    G.synthesis(ws, fused_modconv=fused).square().mean().backward()
    assert ws.grad is not None and torch.isfinite(ws.grad).all()
