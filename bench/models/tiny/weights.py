"""Deterministic random parameters, one independent stream per parameter name.

Each tensor is drawn from its own generator seeded with (seed, crc32(name)), so a parameter's value
depends only on the seed and its name: the three attention variants, the fp32 and fp16 builds and
the quantized variants all see exactly the same weights, and adding a layer never shifts the others.
"""

from __future__ import annotations

import zlib

import numpy as np


class ParamSource:
    """Hands out float32 parameters by name, reproducibly from a seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode("utf-8"))])

    def normal(self, name: str, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
        return (mean + std * self._rng(name).standard_normal(shape)).astype(np.float32)

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> np.ndarray:
        """A conv / linear weight with variance gain / fan_in (keeps activations near unit scale)."""
        return self.normal(name, shape, std=gain / np.sqrt(max(fan_in, 1)))

    def bias(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self.normal(name, shape, std=0.02)

    def norm_scale(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Normalization gamma near 1 (trained models' affine parameters are far from the 1 / 0 init,
        which keeps coremltools from folding them away, as it does not in real conversions)."""
        return self.normal(name, shape, std=0.1, mean=1.0)

    def norm_shift(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return self.normal(name, shape, std=0.1)
