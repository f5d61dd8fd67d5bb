"""Shared test fixtures: where the NVlabs conformance data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("GANINSTRUMENT_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"conformance fixtures not found at {FIXTURES}; set GANINSTRUMENT_FIXTURES")
    return FIXTURES


from jack_helpers import jack_server  # noqa: E402,F401  (session fixture: a private JACK server)
