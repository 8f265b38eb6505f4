"""Per-op profiling: times, FLOPs from the kernel registry, bytes moved, tables and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mil_programs import conv_add_program, ensure_kernels
from rich.console import Console

from bench.engines.reference.model import ReferenceModel
from bench.engines.reference.ops.registry import registered_kernels
from bench.errors import BenchError

PATH = Path("models/tiny_unet.mlmodelc")


@pytest.fixture(autouse=True)
def _kernels():
    ensure_kernels()


@pytest.fixture()
def profiled():
    prog, weight = conv_add_program()
    model = ReferenceModel(PATH, prog)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    return model.profile({"x": x}, repeats=3), weight


def test_per_op_rows_time_flops_and_bytes(profiled):
    result, weight = profiled
    frame = result.by_op()
    assert list(frame["op_name"]) == ["conv1", "add1"]
    assert list(frame["op_type"]) == ["conv", "add"]
    assert (frame["seconds"] > 0).all()
    assert result.repeats == 3 and result.wall_seconds >= result.total_seconds > 0
    assert frame["share"].sum() == pytest.approx(1.0)
    out_elems = 1 * 4 * 8 * 8
    conv_flops = registered_kernels()["conv"].flops
    if conv_flops is not None:  # FLOPs come from the kernel's registered estimate
        assert frame.loc[0, "flops"] > 0
    # Bytes: conv reads x (1x3x8x8), the weight and bias, and writes y; add reads y and a scalar.
    x_bytes, y_bytes = 3 * 64 * 4, out_elems * 4
    assert frame.loc[0, "bytes_moved"] == x_bytes + weight.nbytes + 4 * 4 + y_bytes
    assert frame.loc[1, "bytes_moved"] == y_bytes + 4 + y_bytes


def test_by_op_type_groups_and_sorts(profiled):
    result, _ = profiled
    frame = result.by_op_type()
    assert set(frame["op_type"]) == {"conv", "add"}
    assert list(frame["seconds"]) == sorted(frame["seconds"], reverse=True)
    assert frame["count"].sum() == 2
    assert set(frame.columns) >= {"op_type", "family", "count", "seconds", "share", "flops", "bytes_moved", "gflops_per_s"}


def test_table_renders_and_csv_round_trips(profiled, tmp_path):
    import pandas as pd

    result, _ = profiled
    console = Console(record=True, width=140)
    console.print(result.table(by="type"))
    console.print(result.table(by="op", top=1))
    text = console.export_text()
    assert "tiny_unet.mlmodelc: 2 ops" in text and "conv" in text and "top 1 of 2 rows" in text
    csv = result.to_csv(tmp_path / "p.csv", by="op")
    assert list(pd.read_csv(csv)["op_name"]) == ["conv1", "add1"]
    with pytest.raises(ValueError, match="by must be one of"):
        result.table(by="layer")


def test_repeats_must_be_positive():
    prog, _ = conv_add_program()
    with pytest.raises(BenchError, match="repeats must be at least 1"):
        ReferenceModel(PATH, prog).profile({"x": np.zeros((1, 3, 8, 8), np.float32)}, repeats=0)


def test_si_formatting_keeps_three_digits():
    from bench.engines.reference.profile import _si

    assert [_si(v) for v in (77, 77.5, 1234, 98_560, 2.56e6, 5.904e9)] == ["77", "77.5", "1.23 k", "98.6 k", "2.56 M", "5.90 G"]
    assert _si(616, "B") == "616 B" and _si(343_300, "B") == "343 kB"


def test_table_fits_an_80_column_terminal(profiled):
    result, _ = profiled
    console = Console(record=True, width=80)
    for by in ("type", "op"):
        console.print(result.table(by=by))
    assert max(len(line) for line in console.export_text().splitlines()) <= 80
