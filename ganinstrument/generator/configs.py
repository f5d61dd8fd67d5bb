"""Named full-size architectures, as NVlabs constructor arguments (for benchmarks and tests).

`build_generator(*FULL_SIZE["sg2-1024-f"])`-style use: each entry is (kind, init_kwargs).
The values follow the official training configurations, so random networks built from them
have exactly the size and cost of real models.
"""

from __future__ import annotations

_Z512 = dict(z_dim=512, w_dim=512, c_dim=0, img_channels=3)
_SG3_EMA = 0.5 ** (32 / 20000)  # stylegan3 train.py with batch 32

FULL_SIZE: dict[str, tuple[str, dict]] = {
    # stylegan2-ada-pytorch cfg "paper256": fmaps 0.5 -> channel_base 16384, 8 mapping layers.
    "sg2-256-paper": ("sg2", dict(_Z512, img_resolution=256, channel_base=16384, channel_max=512,
                                  num_fp16_res=4, conv_clamp=256, mapping_kwargs=dict(num_layers=8))),
    # StyleGAN2 config-f: channel_base 32768, channel_max 512.
    "sg2-512-f": ("sg2", dict(_Z512, img_resolution=512, channel_base=32768, channel_max=512,
                              num_fp16_res=4, conv_clamp=256, mapping_kwargs=dict(num_layers=8))),
    "sg2-1024-f": ("sg2", dict(_Z512, img_resolution=1024, channel_base=32768, channel_max=512,
                               num_fp16_res=4, conv_clamp=256, mapping_kwargs=dict(num_layers=8))),
    # stylegan3 train.py cfg stylegan3-t / stylegan3-r defaults (cbase 32768, cmax 512; R doubles both).
    "sg3t-256": ("sg3", dict(_Z512, img_resolution=256, channel_base=32768, channel_max=512,
                             num_fp16_res=4, conv_clamp=256, magnitude_ema_beta=_SG3_EMA,
                             mapping_kwargs=dict(num_layers=2))),
    "sg3r-256": ("sg3", dict(_Z512, img_resolution=256, channel_base=65536, channel_max=1024,
                             num_fp16_res=4, conv_clamp=256, conv_kernel=1, use_radial_filters=True,
                             magnitude_ema_beta=_SG3_EMA, mapping_kwargs=dict(num_layers=2))),
    "sg3t-1024": ("sg3", dict(_Z512, img_resolution=1024, channel_base=32768, channel_max=512,
                              num_fp16_res=4, conv_clamp=256, magnitude_ema_beta=_SG3_EMA,
                              mapping_kwargs=dict(num_layers=2))),
}
