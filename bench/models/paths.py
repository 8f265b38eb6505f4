"""Where model files live: the user cache, or `BENCH_MODELS_DIR` (tests and CI set it)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

#: Environment variable that overrides the models folder.
MODELS_DIR_ENV = "BENCH_MODELS_DIR"


def models_dir() -> Path:
    """`user_cache_dir("sdxl-coreml-bench")/models`, or `$BENCH_MODELS_DIR` when set."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(user_cache_dir("sdxl-coreml-bench")) / "models"
