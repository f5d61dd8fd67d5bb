"""Lines through MIDI clock ticks: the least-squares tick line (robust to late ticks), where a
tempo changed, and how many ticks a gap lost (see `clock`'s module docstring for why each is
needed). Ticks are arrival times indexed by tick number; NaN marks a tick whose time is
unknown (a stall's, or a lost one), left out of every fit but counted in the index."""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_SIDE = 6  # a change is placed at least this many ticks from either end of the segment
OUTLIER_K = 4.0  # residuals beyond this many robust deviations are left out of the fit
RESIDUAL_FLOOR_S = 0.0005  # the robust deviation is at least this (a clean clock has ~0)
LOST_MAX = 4  # at most this many ticks lost in one gap
LOST_BEFORE = 16  # the held ticks are put on the line of the ticks just before the gap (a change may be near)
LOST_NOISE = 0.2  # if those sit on it within this share of the interval (robust deviation)
LOST_SLOPE = 0.12  # and the held ticks' own line is this close to its slope (not a slower tempo)
LOST_TOLERANCE = 0.45  # a held tick is on the line within this share of the interval
ALIKE_SHARE = 0.85  # the last ticks came this often one usual step apart (to 0.2 %): a period's quantum, no look


def robust_line(ts: Sequence[float]) -> tuple[float, float, float] | None:
    """Least squares of ts against 0, 1, 2... (NaN: a tick whose time is unknown, left out):
    (intercept, slope, the slope's standard error), fitted again without the points beyond
    OUTLIER_K robust deviations; None if < 3 points."""
    xs = [x for x, t in enumerate(ts) if t == t]
    n = len(xs)
    if n < 3:
        return None
    first = _line(xs, [ts[x] for x in xs])
    if first is None:
        return None
    a, b, _ = first
    residuals = [ts[x] - (a + b * x) for x in xs]
    spread = max(1.4826 * median([abs(r) for r in residuals]), RESIDUAL_FLOOR_S)
    keep = [x for x, r in zip(xs, residuals) if abs(r) <= OUTLIER_K * spread]
    if len(keep) == n or len(keep) < max(3, n // 2):
        return first
    return _line(keep, [ts[x] for x in keep]) or first


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float] | None:
    """Least-squares (intercept, slope, the slope's standard error) of ys against xs; None if
    the xs do not spread."""
    n = len(xs)
    if n < 3:
        return None
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sxy = syy = 0.0
    for x, y in zip(xs, ys):
        dx, dy = x - mx, y - my
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    if sxx <= 0.0:
        return None
    b = sxy / sxx
    a = my - b * mx
    sse = max(syy - b * sxy, 0.0)
    se = math.sqrt(sse / (n - 2) / sxx)
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(se)):
        return None
    return a, b, se


def bend(ts: Sequence[float], short: int) -> int:
    """Where the tempo changed in ts: the split (at least MIN_SIDE points each side) whose two
    separately fitted lines leave the least squared error (prefix sums: one pass); `short`
    points before the end when none is better."""
    n = len(ts)
    # prefix sums of 1, x, y, x*x, x*y, y*y (a NaN tick adds nothing)
    sums = [(0, 0.0, 0.0, 0.0, 0.0, 0.0)]
    for x, y in enumerate(ts):
        c, sx, sy, sxx, sxy, syy = sums[-1]
        sums.append((c + 1, sx + x, sy + y, sxx + x * x, sxy + x * y, syy + y * y) if y == y else sums[-1])

    def sse(i: int, j: int) -> float:  # points i..j-1
        c0, sx0, sy0, sxx0, sxy0, syy0 = sums[i]
        c1, sx1, sy1, sxx1, sxy1, syy1 = sums[j]
        c, sx, sy = c1 - c0, sx1 - sx0, sy1 - sy0
        if c < 2:
            return 0.0
        vxx = (sxx1 - sxx0) - sx * sx / c
        vxy = (sxy1 - sxy0) - sx * sy / c
        vyy = (syy1 - syy0) - sy * sy / c
        return vyy - (vxy * vxy / vxx if vxx > 0 else 0.0)

    best, where = math.inf, max(0, n - short)
    total = sums[-1][0]
    for split in range(MIN_SIDE, n - MIN_SIDE + 1):
        if min(sums[split][0], total - sums[split][0]) < MIN_SIDE:  # (ticks of known time, each side)
            continue
        err = sse(0, split) + sse(split, n)
        if err < best:
            best, where = err, split
    return where


def median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


def count_lost(pre: list[float], held: list[float], arrivals: list[float]) -> tuple[int, int, int, int]:
    """How many ticks a gap lost. `held`: the times of the ticks from the gap on (NaN: a
    stall's, said nothing); `pre`: the ticks just before it (NaN: unknown); `arrivals`: the
    last ticks' times as they came. Returns (ticks lost before the held ones, the held index
    of a second gap, ticks lost there, how many of the last held ticks to hold on).

    The held ticks are put on the line of the ticks before the gap, each as many intervals
    further along as ticks were lost before it: the fewest losses (at most LOST_MAX, in at
    most two gaps, three held ticks at least after the second) that put every one on it
    within LOST_TOLERANCE of the interval, but one that came late (another stall); a last
    one that came late is held on (it may follow another gap). Nothing is lost when none
    does (a tempo change: the fit's to find), when a second gap has no time gap, when the
    held ticks' own slope is not the line's (a slower tempo drifts off, in steps too), or
    when the ticks before are too rough to tell: further than LOST_NOISE of the interval
    off their line, sharing JACK periods, or one a period with the period a little shorter
    than the interval (it skips one now and then, as a loss would). That last guard also
    leaves a clock with no jitter at all (every step alike) unlooked at, and a device that
    pauses its clock for a whole number of ticks without a transport message is taken for
    lost ticks: timing alone cannot tell those apart."""
    line = robust_line(pre)
    nothing = (0, 0, 0, 0)
    if line is None:
        return nothing
    a, b, _se = line
    deviation = 1.4826 * median([abs(y - (a + b * x)) for x, y in enumerate(pre) if y == y])
    steps = [y1 - y0 for y0, y1 in zip(pre, pre[1:]) if y0 == y0 and y1 == y1]
    if b <= 0.0 or deviation > LOST_NOISE * b or len(steps) < LOST_BEFORE // 2 or min(steps) < 0.5 * b:
        return nothing  # (ticks that share JACK periods, or stalls', hide the losses)
    # one tick a JACK period, which skips one now and then: a gap like a loss's
    came = [y1 - y0 for y0, y1 in zip(arrivals, arrivals[1:])]
    usual = median(came) if came else 0.0
    if sum(abs(d - usual) <= 0.002 * b for d in came) >= ALIKE_SHARE * len(came):
        return nothing  # (the last ticks came one period apart, nearly all)
    raw = _line(range(len(arrivals)), arrivals)
    if max(steps) - min(steps) < 0.05 * b and (raw is None or abs(b / raw[1] - 1.0) > 0.005):
        return nothing  # (the ticks before came one period apart, and the ticks' own pace is not that)
    known = [i for i, y in enumerate(held) if y == y]
    # how many intervals behind the line each held tick is
    behind = [(held[i] - (a + b * (len(pre) + i))) / b for i in known]
    best = None
    for split in range(2, len(known) + 1):  # (the second gap before known[split]; none at the end)
        if 0 < len(known) - split < 3:  # (a second gap: three ticks after it at least)
            continue
        for first in range(LOST_MAX + 1):
            for second in range(first, LOST_MAX + 1) if split < len(known) else (first,):
                off = [r - (first if k < split else second) for k, r in enumerate(behind)]
                late = [k for k, r in enumerate(off) if abs(r) > LOST_TOLERANCE]
                if len(late) > 1 or (late and off[late[0]] < 0):
                    continue
                key = (second, len(late), sum(abs(r) for r in off))
                if best is None or key < best[0]:
                    best = (key, split, first, second, late)
    if best is None or best[0][0] == 0:
        return nothing
    _key, split, first, second, late = best
    if second > first and held[known[split]] - held[known[split - 1]] < (second - first + 0.5) * b:
        return nothing  # no gap there: the ticks drift off the line (a slower tempo)
    # the held ticks' own slope, each gap's side on its own (a slower tempo drifts off in steps too)
    sxx = sxy = 0.0
    sides = (range(split), range(split, len(known)))
    for part in ([k for k in side if k not in late] for side in sides):
        if len(part) >= 2:
            xs, ys = [known[k] for k in part], [held[known[k]] for k in part]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx += sum((x - mx) ** 2 for x in xs)
            sxy += sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        if part and part[0] >= split and len(part) >= 3:
            second_slope = _line(xs, ys)
            if second_slope is None or abs(second_slope[1] / b - 1.0) > 2 * LOST_SLOPE:
                return nothing
    if sxx <= 0.0 or abs(sxy / sxx / b - 1.0) > LOST_SLOPE:
        return nothing
    keep = len(held) - known[-1] if late and late[0] == len(known) - 1 else 0
    return first, known[split] if split < len(known) else len(held), second - first, keep
