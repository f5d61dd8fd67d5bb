"""Shared test fixtures: where the NVlabs conformance data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("GANINSTRUMENT_FIXTURES", REPO.parent / "shared" / "fixtures"))
# perform stays out of Ableton Link (multicast on this machine's networks); the Link tests run it
# inside a private network namespace of their own, with this set to 0 there.
os.environ["GANINSTRUMENT_NO_LINK"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _user_folder(tmp_path_factory):
    """No test reads or writes the real per-user folder (userdirs.py): the session has its own
    (set before any other fixture makes an Instrument, subprocesses inherit it)."""
    old = os.environ.get("GANINSTRUMENT_HOME")
    os.environ["GANINSTRUMENT_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if old is None:
        os.environ.pop("GANINSTRUMENT_HOME", None)
    else:
        os.environ["GANINSTRUMENT_HOME"] = old


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"conformance fixtures not found at {FIXTURES}; set GANINSTRUMENT_FIXTURES")
    return FIXTURES


from jack_helpers import jack_server  # noqa: E402,F401  (session fixture: a private JACK server)
