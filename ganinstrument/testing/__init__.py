"""Harnesses for the test suite and the benchmarks (never imported by the instrument itself).

They live in the package, not in tests/ or benchmarks/, so both can import them the same way
from a plain checkout (`python3 -m pytest -q`, `python benchmarks/midi.py`) and from an
installed wheel, and neither has to put the other's folder on sys.path. Nothing here imports
pytest: the test suite turns their errors into test failures itself (tests/jack_helpers.py).
"""
