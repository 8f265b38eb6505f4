"""Kernels of the reference engine, one module per op family.

Importing this package registers every kernel (see `registry`).
"""

from bench.engines.reference.ops import (  # noqa: F401  (importing a family module registers its kernels)
    attention,
    constexpr,
    conv,
    elementwise,
    linear,
    normalization,
    reduction,
    resample,
    shape,
)
from bench.engines.reference.ops.registry import (
    FAMILIES,
    Kernel,
    get_kernel,
    register,
    registered_kernels,
)

__all__ = ["FAMILIES", "Kernel", "get_kernel", "register", "registered_kernels"]
