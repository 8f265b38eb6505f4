"""Fixtures for the kernel tests: call a kernel through the registry with a minimal `Operation`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from bench.engines.reference.graph import Operation, TensorType, Value
from bench.engines.reference.ops import get_kernel


def make_op(op_type: str, outputs: Sequence[tuple[str, tuple[int | None, ...]]] = (("fp32", ()),)) -> Operation:
    """An `Operation` of `op_type` with the given (dtype, shape) outputs and no bound inputs."""
    values = tuple(Value(f"{op_type}_out{i}", TensorType(dtype, tuple(shape))) for i, (dtype, shape) in enumerate(outputs))
    return Operation(type=op_type, name=f"test_{op_type}", inputs={}, outputs=values)


@pytest.fixture
def run() -> Callable[..., Any]:
    """`run(op_type, outputs=..., **inputs)`: the registered kernel's result for these inputs."""

    def call(op_type: str, outputs: Sequence[tuple[str, tuple[int | None, ...]]] = (("fp32", ()),), **inputs: Any) -> Any:
        return get_kernel(op_type).fn(make_op(op_type, outputs), **inputs)

    return call


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
