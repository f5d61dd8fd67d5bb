"""DropQueue (queues.py): the bounded hand-over queue every input thread uses. A full queue
drops (the newest or the oldest, as asked) and counts; drain gives everything in arrival order;
threads lose nothing below the bound and count exactly what the bound cost."""

from __future__ import annotations

import threading

import pytest

from ganinstrument.common.queues import DropQueue


def test_drop_newest_keeps_what_came_first_and_counts_the_rest():
    q = DropQueue(3)
    assert [q.put(i) for i in range(5)] == [True, True, True, False, False]
    assert len(q) == 3 and q.dropped == 2
    assert q.drain() == [0, 1, 2]
    assert len(q) == 0 and q.drain() == []
    assert q.put(5) and q.drain() == [5] and q.dropped == 2  # room again after a drain


def test_drop_oldest_keeps_the_newest_and_counts_what_went():
    q = DropQueue(3, drop="oldest")
    assert [q.put(i) for i in range(5)] == [True, True, True, False, False]
    assert len(q) == 3 and q.dropped == 2
    assert q.drain() == [2, 3, 4]
    assert len(q) == 0 and q.dropped == 2


def test_drain_is_arrival_order_across_drains():
    q = DropQueue(100)
    for i in range(10):
        q.put(i)
    first = q.drain()
    for i in range(10, 15):
        q.put(i)
    assert first + q.drain() == list(range(15)) and q.dropped == 0


def test_a_new_bound_applies_to_the_next_puts():
    q = DropQueue(2)
    q.maxlen = 4
    assert all(q.put(i) for i in range(4)) and not q.put(4)
    assert q.drain() == [0, 1, 2, 3] and q.dropped == 1


@pytest.mark.parametrize("bad", [{"maxlen": 0}, {"maxlen": -1}, {"maxlen": 3, "drop": "middle"}])
def test_nonsense_settings_are_refused(bad):
    with pytest.raises(ValueError):
        DropQueue(**bad)


def _run(q: DropQueue, producers: int, per_producer: int) -> list[tuple[int, int]]:
    """`producers` threads put (producer, i) for i < per_producer while one consumer thread
    drains until they are done; returns everything the consumer got, in the order it got it."""
    got: list[tuple[int, int]] = []
    done = threading.Event()
    start = threading.Barrier(producers + 1)

    def produce(p):
        start.wait()
        for i in range(per_producer):
            q.put((p, i))

    def consume():
        start.wait()
        while not done.is_set():
            got.extend(q.drain())
        got.extend(q.drain())

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    consumer = threading.Thread(target=consume)
    for t in [consumer, *threads]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join()
    return got


def test_a_producer_thread_against_a_consumer_thread_loses_nothing_below_the_bound():
    n = 50_000
    q = DropQueue(n)  # the bound can never be reached: nothing may be lost
    got = _run(q, 1, n)
    assert got == [(0, i) for i in range(n)] and q.dropped == 0


@pytest.mark.parametrize("drop", ["newest", "oldest"])
def test_many_producers_against_a_small_bound_count_every_drop_exactly(drop):
    producers, n = 4, 20_000
    q = DropQueue(16, drop=drop)
    got = _run(q, producers, n)
    assert len(got) + q.dropped == producers * n  # each item either arrived or was counted
    assert len(set(got)) == len(got)  # none twice
    for p in range(producers):  # and each producer's items in the order it put them
        mine = [i for who, i in got if who == p]
        assert mine == sorted(mine)


# -- the places that hand over through it ---------------------------------------------------


def test_a_flood_of_key_actions_between_two_frames_is_bounded():
    """The preview's keys wait in the engine's DropQueue: a flood plays the newest KEY_QUEUE
    actions and drops the oldest, so the key pressed last (Esc, quit) is never the one lost."""
    from ganinstrument.common.clock import FakeClock
    from ganinstrument.engine.loop import KEY_QUEUE, Engine
    from ganinstrument.instrument.facade import Instrument

    engine = Engine(Instrument("demo", device="cpu"), clock=FakeClock(), fps=None)
    try:
        for _ in range(KEY_QUEUE + 1):
            engine.key_action("panic.freeze")
        engine.key_action("quit")
        engine.frame()
        assert engine.stopping  # the last key played
        assert engine._keys.dropped == 2  # the two oldest toggles went ...
        assert engine.frozen  # ... so KEY_QUEUE - 1 (odd) toggles played
    finally:
        engine.close()


def test_onsets_the_engine_does_not_drain_lose_the_oldest_and_are_counted():
    """The features worker's onset queue keeps the newest onsets when the engine falls behind,
    and counts exactly the ones that went (the same input drained often loses none)."""
    import numpy as np

    from ganinstrument.sources.audio.input import BlockSource

    rate, rng = 48000, np.random.default_rng(3)
    x = np.zeros(24 * rate, np.float32)
    burst = (rng.standard_normal(480) * np.exp(-np.arange(480) / 96.0) * 0.8).astype(np.float32)
    for k in range(1, 120):  # a click every 0.2 s
        start = int(0.2 * k * rate)
        x[start:start + 480] += burst
    drained = BlockSource(x, rate)  # drained every half second: nothing lost
    every = []
    for step in range(1, 49):
        drained.advance_to(step / 2)
        every.extend(drained.drain_onsets())
    assert drained.worker.onsets_dropped == 0 and len(every) > 256

    neglected = BlockSource(x, rate)  # the same sound, drained once at the end
    neglected.advance_to(24.0)
    kept = neglected.drain_onsets()
    assert len(kept) == 256 and neglected.worker.onsets_dropped == len(every) - 256
    assert kept == every[-256:]  # the newest stay, in order
