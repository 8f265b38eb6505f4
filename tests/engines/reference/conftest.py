"""Fixtures shared by the reference engine's loader tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from mil_programs import TARGETS, cached_mlpackage


@pytest.fixture(scope="session")
def packages() -> dict[tuple[str, str], Path]:
    """The test program converted for every deployment target, with fp32 and fp16 compute precision."""
    return {(target, precision): cached_mlpackage(target, precision) for target in TARGETS for precision in ("fp32", "fp16")}
