"""Fuzz the weight.bin reader: mutated files, and any header, record, offset, dtype or shape."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fuzz.fuzzing import BOUNDARY_INTEGERS, FUZZ, FUZZ_MEMORY_BUDGET, loads_or_refuses, mutated
from hypothesis import example, given
from hypothesis import strategies as st

from bench.engines.reference import weights
from bench.limits import MEMORY_BUDGET_ENV

pytestmark = pytest.mark.fuzz

#: (value, MIL dtype) of the seed file's blobs: a native, a widened and a packed sub-byte dtype.
_VALUES = [
    (np.arange(12, dtype=np.float32).reshape(3, 4), "fp32"),
    (np.linspace(-1, 1, 10, dtype=np.float32), "bf16"),
    (np.arange(16, dtype=np.uint8) % 16, "uint4"),
    (np.array([-8, 7, 0, 1, -1], dtype=np.int8), "int4"),
]


def _seed() -> tuple[bytes, list[tuple[int, str, tuple[int, ...]]]]:
    writer = weights.WeightWriter()
    blobs = [(writer.add(value, dtype), dtype, value.shape) for value, dtype in _VALUES]
    return writer.to_bytes(), blobs


SEED, BLOBS = _seed()
_DIR = Path(tempfile.mkdtemp(prefix="fuzz-weights-"))
_DICTIONARY = [struct.pack("<I", n & 0xFFFFFFFF) for n in BOUNDARY_INTEGERS] + [
    struct.pack("<Q", n) for n in BOUNDARY_INTEGERS
] + [struct.pack("<I", 0xDEADBEEF), b"\xff" * 8]

_SHAPES = st.lists(st.sampled_from(BOUNDARY_INTEGERS) | st.integers(0, 20), max_size=4).map(tuple)


@pytest.fixture(autouse=True)
def _budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, FUZZ_MEMORY_BUDGET)


def _read_all(path: Path, reads: list[tuple[int, str, tuple[int, ...]]]) -> list[np.ndarray]:
    file = weights.WeightFile(path)
    return [file.read(offset, dtype, shape) for offset, dtype, shape in reads]


@FUZZ
@given(data=mutated([SEED], _DICTIONARY), extra=st.tuples(st.sampled_from(BOUNDARY_INTEGERS) | st.integers(0, 600), st.sampled_from(sorted(weights.CODES_BY_DTYPE)), _SHAPES))
@example(data=struct.pack("<II", 2**32 - 1, 2) + SEED[8:], extra=(64, "fp32", (3, 4)))  # impossible blob count
@example(data=struct.pack("<II", 4, 99) + SEED[8:], extra=(64, "fp32", (3, 4)))  # unknown version
@example(data=SEED, extra=(64, "fp32", (2**32, 2**32)))  # a shape whose int64 product wraps to 0
@example(data=SEED, extra=(64, "fp32", (2**62, 4)))
def test_weight_file_reads_or_refuses(data: bytes, extra: tuple[int, str, tuple[int, ...]]) -> None:
    path = _DIR / "weight.bin"
    path.write_bytes(data)
    result = loads_or_refuses(lambda: _read_all(path, [*BLOBS, extra]))
    if isinstance(result, list):  # what was read has the declared shape
        for array, (_, _, shape) in zip(result, [*BLOBS, extra]):
            assert array.shape == tuple(shape)


def test_the_seed_reads_back_exactly() -> None:
    path = _DIR / "seed.bin"
    path.write_bytes(SEED)
    for array, (value, dtype) in zip(_read_all(path, BLOBS), _VALUES):
        expected = weights.bf16_to_float32(weights.float32_to_bf16(value)) if dtype == "bf16" else value
        np.testing.assert_array_equal(array, expected)
