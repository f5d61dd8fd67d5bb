"""RGB -> I420 on the frame's device (outputs/yuv.py), checked against the BT.709 formulas and
against swscale, which converts the host path's frames."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from ganinstrument.outputs.yuv import KB, KR, I420Download, rgb_to_i420


def _swscale(img: np.ndarray) -> np.ndarray:
    height, width = img.shape[:2]
    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
    return av.video.reformatter.VideoReformatter().reformat(
        vf, width, height, "yuv420p", dst_colorspace="itu709").to_ndarray()


def _planes(i420: np.ndarray, height: int, width: int):
    y = i420[:height]
    chroma = i420[height:].reshape(-1)
    n = (height // 2) * (width // 2)
    return y, chroma[:n].reshape(height // 2, width // 2), chroma[n:].reshape(height // 2, width // 2)


@pytest.mark.parametrize("rgb", [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (30, 200, 90)])
def test_flat_colours_follow_the_bt709_limited_range_formulas(rgb):
    img = np.full((8, 12, 3), rgb, np.uint8)
    y, u, v = _planes(rgb_to_i420(torch.from_numpy(img)).numpy(), 8, 12)
    r, g, b = (float(c) for c in rgb)
    luma = KR * r + (1 - KR - KB) * g + KB * b
    want = (16 + 219 / 255 * luma, 128 + 224 / 255 * (b - luma) / (2 - 2 * KB),
            128 + 224 / 255 * (r - luma) / (2 - 2 * KR))
    for plane, value in zip((y, u, v), want):
        assert (plane == round(value)).all()
    assert np.array_equal(rgb_to_i420(torch.from_numpy(img)).numpy(), _swscale(img))  # swscale agrees


def test_a_smooth_picture_matches_swscale():
    h, w = 64, 96
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    img = np.stack([127 + 120 * np.sin(2 * np.pi * xx / 48), 127 + 120 * np.cos(2 * np.pi * yy / 48),
                    127 + 100 * np.sin(2 * np.pi * (xx + yy) / 48)], -1).round().astype(np.uint8)
    ours = rgb_to_i420(torch.from_numpy(img)).numpy()
    ref = _swscale(img)
    assert ours.shape == ref.shape == (h * 3 // 2, w)
    assert np.abs(ours[:h].astype(int) - ref[:h]).max() <= 1              # luma
    chroma = np.abs(ours[h:].astype(int) - ref[h:])
    assert chroma.max() <= 2 and chroma.mean() < 0.5                     # 2x2 blocks, centre-sited


def test_odd_sizes_are_refused_and_the_cpu_download_is_the_conversion():
    with pytest.raises(ValueError, match="even"):
        rgb_to_i420(torch.zeros((5, 4, 3), dtype=torch.uint8))
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8))
    down = I420Download(img)
    assert down.fits(img) and not down.fits(img[:4])
    assert np.array_equal(down(img), rgb_to_i420(img).numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_download_matches_the_cpu_conversion():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    down = I420Download(img.cuda())
    assert np.array_equal(down(img.cuda()), rgb_to_i420(img).numpy())
