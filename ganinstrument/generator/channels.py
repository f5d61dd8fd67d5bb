"""StyleGAN2 channel tables: NVlabs' `min(channel_base // res, channel_max)` and its inverse."""

from __future__ import annotations


def sg2_channels(channel_base: int, channel_max: int, img_resolution: int) -> dict:
    """{resolution: channels} for resolutions 4 .. img_resolution, as NVlabs StyleGAN2 builds them."""
    table = {}
    res = 4
    while res <= img_resolution:
        table[res] = min(channel_base // res, channel_max)
        res *= 2
    return table


def fit_channel_params(table: dict) -> tuple[int, int] | None:
    """(channel_base, channel_max) reproducing `table` exactly, or None if no pair does.

    channel_max is the widest layer; every narrower resolution pins channel_base to an interval
    [c*res, (c+1)*res - 1], and every resolution at the maximum needs channel_base >= max*res.
    The smallest channel_base in the intersection is returned (the usual round NVlabs value).
    """
    if not table:
        return None
    channel_max = max(table.values())
    low, high = 1, None
    for res, ch in table.items():
        if ch == channel_max:
            low = max(low, channel_max * res)
        else:
            low = max(low, ch * res)
            top = (ch + 1) * res - 1
            high = top if high is None else min(high, top)
    if high is not None and low > high:
        return None
    if sg2_channels(low, channel_max, max(table)) != dict(sorted(table.items())):
        return None
    return low, channel_max
