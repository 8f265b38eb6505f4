"""Shared generated models for tests: one build per test session, reused by every helper's tests.

    from bench.models.testing import tiny_models_dir, tiny_model_set
    model_set = tiny_model_set("tiny-split-einsum-fp16")

The models go to `$BENCH_MODELS_DIR` when set (CI points it at a cache), else to a folder under
the system temp dir keyed by the generator version, so every test process of a run, and later
runs, find them already built. Builds are atomic, so concurrent test processes are safe.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.models.paths import MODELS_DIR_ENV


def tiny_models_dir() -> Path:
    """The folder tests build generated models into (and set `BENCH_MODELS_DIR` to)."""
    from bench.models.tiny.build import GENERATOR_VERSION

    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"sdxl-coreml-bench-test-models-g{GENERATOR_VERSION}"


def use_tiny_models_dir() -> Path:
    """Point `BENCH_MODELS_DIR` at `tiny_models_dir()` for this process; return it."""
    folder = tiny_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MODELS_DIR_ENV] = str(folder)
    return folder


def tiny_model_set(variant_id: str = "tiny-split-einsum-fp16"):
    """The `ModelSet` of a generated variant, built into `tiny_models_dir()` on first use."""
    use_tiny_models_dir()
    from bench.models import zoo

    return zoo.resolve(variant_id)
