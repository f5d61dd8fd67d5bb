"""The NVlabs conformance fixtures on each device there is: the CPU always, CUDA where present.

test_stylegan2.py and test_stylegan3.py go through every case on the CPU in detail; this runs
the main cases (mapping, truncation, synthesis, style mixing) with the networks and data moved
to the device, so a GPU machine checks the same numbers with the code it will play on.
On CUDA, TF32 is off for the check (the fixtures are float32; TF32 matrix products differ
by ~1e-3) and `force_fp32=True`, as the fixtures were made; the float16 path is checked against
the float32 one with a float16-sized tolerance.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ganinstrument.generator import build_generator

FIXTURES = [("sg2_small", "sg2"), ("sg2_cond", "sg2"), ("sg2ada_small", "sg2"), ("sg3t_small", "sg3"),
            ("sg3r_small", "sg3")]
CASES = [("psi1", {}), ("psi0.7", dict(truncation_psi=0.7)),
         ("psi0.7_cutoff4", dict(truncation_psi=0.7, truncation_cutoff=4))]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="needs a CUDA device"))]


@pytest.fixture
def float32_exact():
    """TF32 off while the check runs (PyTorch leaves it on for cuDNN convolutions)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _error(actual: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(max |difference|, its tolerance: 1e-4 of the reference's scale)."""
    return (actual.float().cpu() - ref).abs().max().item(), 1e-4 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
def test_the_generators_match_nvlabs_on_every_device(fixtures_dir, float32_exact, device):
    problems = []
    for name, kind in FIXTURES:
        folder = fixtures_dir / name
        config = json.loads((folder / "config.json").read_text())
        G = build_generator(kind, **config["init_kwargs"])
        G.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
        G = G.to(device).eval()
        cases = {k: v.to(device) for k, v in load_file(str(folder / "cases.safetensors")).items()}
        z = cases["z"]
        c = cases.get("c", torch.zeros([z.shape[0], 0], device=device))
        with torch.no_grad():
            for key, kwargs in CASES:
                ws = G.mapping(z, c, **kwargs)
                err = (ws - cases[f"{key}.ws"]).abs().max().item()
                if err > 1e-5:
                    problems.append(f"{name} {key} ws: {err:.3g} > 1e-05")
                img = G.synthesis(cases[f"{key}.ws"], noise_mode="const", force_fp32=True)
                assert img.device.type == torch.device(device).type
                err, tol = _error(img, cases[f"{key}.img"].cpu())
                if err > tol:
                    problems.append(f"{name} {key} image: {err:.3g} > {tol:.3g}")
            mixed = G.synthesis(cases["mix_cols4.ws"], noise_mode="const", force_fp32=True)
            err, tol = _error(mixed, cases["mix_cols4.img"].cpu())
            if err > tol:
                problems.append(f"{name} mix_cols4 image: {err:.3g} > {tol:.3g}")
            # The float16 layers (where the network asks for them, on CUDA): against float32.
            half = G.synthesis(cases["psi1.ws"], noise_mode="const")
            err = (half.float() - G.synthesis(cases["psi1.ws"], noise_mode="const", force_fp32=True)).abs().max().item()
            if err > 2e-2 * max(1.0, cases["psi1.img"].abs().max().item()):
                problems.append(f"{name} float16 path: {err:.3g} from float32")
    assert problems == []
