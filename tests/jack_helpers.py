"""The test suite's side of the JACK harness in ganinstrument/testing/jack.py (shared with the
benchmarks): the `jack_server` session fixture, and the harness's names as the tests import them.

`jack_server` (session fixture) starts a private `jackd --no-realtime -n <unique name> -d dummy`,
points this test process at it (JACK_DEFAULT_SERVER, and JACK_NO_START_SERVER so no client ever
starts a server of its own) and stops it at the end; a server that cannot start fails the test
with jackd's log.
"""

from __future__ import annotations

import os

import pytest

from ganinstrument.testing import jack as _jack
from ganinstrument.testing.jack import (  # noqa: F401  (the names the tests import from here)
    JACK_BACKEND,
    FloodPlayer,
    JackReceiver,
    JackSender,
    JackServer,
    restore_env,
    wait_for,
)


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server (dummy driver) for the whole session; this process talks to it."""
    with _jack.jack_env(f"ganinstrument-test-{os.getpid()}") as name:
        try:
            server = _jack.start_server(name)
        except _jack.JackError as exc:
            pytest.fail(str(exc))
        try:
            yield server
        finally:
            _jack.stop_server(server)
