"""sdxl-coreml-bench: benchmark the Stable Diffusion XL Core ML pipeline.

`bench.load_results(path_or_glob)` returns the tidy results of one or many runs as a DataFrame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pandas as pd


def load_results(path: Any) -> pd.DataFrame:
    """Load results CSVs (a run folder, a file, a glob, or a results/ tree) as a typed DataFrame."""
    from bench.store import load_results as _load

    return _load(path)


__all__ = ["__version__", "load_results"]
