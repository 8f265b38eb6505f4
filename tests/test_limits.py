"""The memory budget and the size checks every reader shares."""

from __future__ import annotations

import psutil
import pytest

from bench.errors import BenchError, ModelFormatError
from bench.limits import MEMORY_BUDGET_ENV, check_allocation, check_tensor, human_bytes, memory_budget, shape_elements


@pytest.mark.parametrize(("text", "expected"), [("123", 123), ("4K", 4096), ("2 MiB", 2 << 20), ("3g", 3 << 30), ("1T", 1 << 40), ("5GB", 5 << 30)])
def test_memory_budget_reads_the_environment(monkeypatch, text: str, expected: int) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, text)
    assert memory_budget() == expected


def test_memory_budget_defaults_to_physical_memory(monkeypatch) -> None:
    monkeypatch.delenv(MEMORY_BUDGET_ENV, raising=False)
    assert memory_budget() == psutil.virtual_memory().total


@pytest.mark.parametrize("text", ["lots", "-5", "0", "1.5G", "12X"])
def test_a_malformed_budget_names_the_variable(monkeypatch, text: str) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, text)
    with pytest.raises(BenchError, match=rf"{MEMORY_BUDGET_ENV}="):
        memory_budget()


def test_shape_elements_is_exact_where_int64_wraps() -> None:
    assert shape_elements((2**32, 2**32), "x") == 2**64  # numpy's int64 product would give 0
    with pytest.raises(ModelFormatError, match=r"w: dimension -1 of shape \[3, -1\]"):
        shape_elements((3, -1), "w", ModelFormatError)
    with pytest.raises(BenchError, match=r"dimension 4611686018427387904"):
        shape_elements((2**62,), "w")


def test_allocations_over_the_budget_are_refused(monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1K")
    assert check_allocation(1024, "x") == 1024
    with pytest.raises(BenchError, match=r"x needs 1\.0 KiB, over the memory budget of 1\.0 KiB"):
        check_allocation(1025, "x")
    assert check_tensor((16, 16), 32, "t") == 256
    with pytest.raises(BenchError, match=r"t: a tensor of shape \[16, 17\] needs 1\.1 KiB"):
        check_tensor((16, 17), 32, "t")
    assert human_bytes(10) == "10 B" and human_bytes(3 << 40) == "3.0 TiB"
