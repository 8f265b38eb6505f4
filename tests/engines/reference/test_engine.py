"""The reference engine behind the engine protocol: `bench.engines.get_engine("reference")`."""

from __future__ import annotations

import numpy as np
import pytest
from mil_programs import conv_add_program, ensure_kernels

from bench.engines import Engine, Model, get_engine, reference
from bench.errors import BenchError


def test_get_engine_returns_the_module_engine():
    engine = get_engine("reference")
    assert engine is reference.ENGINE
    assert isinstance(engine, Engine)
    assert engine.name == "reference" and engine.compute_units == ("REFERENCE",)
    assert engine.separate_compile is False and engine.is_available()


def test_compile_is_identity_and_load_passes_options(tmp_path):
    ensure_kernels()
    prog, _ = conv_add_program()
    folder = reference.write_mlmodelc(prog, tmp_path / "m.mlmodelc")
    engine = reference.ENGINE
    assert engine.compile(folder, "REFERENCE") == folder
    model = engine.load(folder, "REFERENCE", precision="fp16", on_nonfinite="raise")
    assert isinstance(model, Model) and model.precision == "fp16"
    out = model.predict({"x": np.zeros((1, 3, 8, 8), np.float32)})
    assert out["y"].dtype == np.float16
    model.close()
    assert engine.load(folder, "REFERENCE", function_name="main").function.name == "main"


def test_bad_compute_unit_and_options(tmp_path):
    engine = reference.ENGINE
    with pytest.raises(BenchError, match="unknown compute unit 'CPU_AND_NE'; expected REFERENCE"):
        engine.load(tmp_path, "CPU_AND_NE")
    with pytest.raises(BenchError, match="unknown load option\\(s\\) turbo"):
        engine.load(tmp_path, "REFERENCE", turbo=True)
