"""Where the example results live: a real smoke run of the tiny models, shipped under examples/results."""

from pathlib import Path

EXAMPLE_RESULTS = Path(__file__).resolve().parents[2] / "examples" / "results"
