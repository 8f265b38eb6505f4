"""The kernel registry: one numpy function per MIL op type, grouped by family.

A kernel is registered with `@register("conv", family="conv", flops=...)` and is called by the
interpreter as `kernel(op, **inputs)`: `op` is the `Operation` (for its name and output types),
`inputs` are the op's bound parameters resolved to numpy arrays (0-d for scalars), `str` for
strings, and lists for variadic parameters. Optional parameters the program left out are not
passed, so each kernel spells out the MIL default in its signature. A kernel returns one array,
or a tuple for ops with several outputs.

`flops(op, inputs, outputs)` estimates floating-point operations for profiling; bytes moved are
measured by the interpreter from the arrays themselves.

`prepare(op, static)` (optional) runs once at load with the op's constant parameters and returns
them, possibly repacked for speed (a conv weight in Winograd form): work a predict would otherwise
repeat on every call. The kernel must accept what its `prepare` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.engines.reference.graph import Operation
from bench.errors import UnsupportedOpError

KernelFn = Callable[..., Any]
FlopsFn = Callable[[Operation, dict[str, Any], tuple[np.ndarray, ...]], float]
PrepareFn = Callable[[Operation, dict[str, Any]], dict[str, Any]]

FAMILIES: tuple[str, ...] = (
    "conv",
    "linear",  # linear, matmul, einsum
    "normalization",
    "elementwise",  # arithmetic, activations, casts, comparisons
    "shape",  # shape and indexing: reshape, transpose, slice, concat, gather, ...
    "reduction",
    "attention",  # softmax, scaled_dot_product_attention
    "constexpr",  # compressed weights, evaluated once at load
)


@dataclass(frozen=True)
class Kernel:
    """A registered kernel and what the interpreter needs to know about it."""

    op_type: str
    family: str
    fn: KernelFn
    flops: FlopsFn | None = None
    prepare: PrepareFn | None = None

    @property
    def is_constexpr(self) -> bool:
        """Constexpr ops depend only on constants: the interpreter runs them once, at load."""
        return self.family == "constexpr"

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


_KERNELS: dict[str, Kernel] = {}


def register(
    op_type: str, *, family: str, flops: FlopsFn | None = None, prepare: PrepareFn | None = None
) -> Callable[[KernelFn], KernelFn]:
    """Decorator: register `fn` as the kernel of MIL op `op_type`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown kernel family {family!r} for {op_type!r}; expected one of {FAMILIES}")

    def decorate(fn: KernelFn) -> KernelFn:
        if op_type in _KERNELS:
            raise ValueError(f"kernel for {op_type!r} registered twice")
        _KERNELS[op_type] = Kernel(op_type, family, fn, flops, prepare)
        return fn

    return decorate


def get_kernel(op_type: str) -> Kernel:
    """The kernel of `op_type`, or `UnsupportedOpError` naming it."""
    try:
        return _KERNELS[op_type]
    except KeyError:
        raise UnsupportedOpError(f"no kernel for op type {op_type!r}") from None


def registered_kernels() -> dict[str, Kernel]:
    """All registered kernels by op type (a copy)."""
    return dict(_KERNELS)
