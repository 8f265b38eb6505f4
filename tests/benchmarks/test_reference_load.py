"""Load time and per-op dispatch overhead of the reference engine on a ~2000-op program.

Timed run:
    pytest tests/benchmarks/test_reference_load.py --benchmark-only --benchmark-enable
In the normal test run each benchmark runs once, untimed, and checks what it loaded.

The program is 500 blocks of conv 1x1 -> mul -> relu -> add on a small tensor (2000 ops besides
its consts), so the timings measure the loaders and the interpreter, not numpy's arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.engines import reference

BLOCKS = 500


def _block_program():
    from bench.engines.reference.graph import (
        Function,
        Operation,
        Program,
        Ref,
        TensorType,
        Value,
    )

    rng = np.random.default_rng(0)
    act = TensorType("fp32", (1, 16, 4, 4))
    ops: list[Operation] = []
    current = "x"

    def const(name, value, dtype):
        ops.append(Operation("const", name, {}, (Value(name, TensorType(dtype, np.shape(value))),), {"val": value}))

    for i in range(BLOCKS):
        const(f"w{i}", (rng.standard_normal((16, 16, 1, 1)) * 0.1).astype(np.float16), "fp16")
        const(f"s{i}", np.array(0.5, np.float32), "fp32")
        ops.append(Operation("conv", f"conv{i}", {"x": Ref(current), "weight": Ref(f"w{i}")}, (Value(f"c{i}", act),)))
        ops.append(Operation("mul", f"mul{i}", {"x": Ref(f"c{i}"), "y": Ref(f"s{i}")}, (Value(f"m{i}", act),)))
        ops.append(Operation("relu", f"relu{i}", {"x": Ref(f"m{i}")}, (Value(f"r{i}", act),)))
        ops.append(Operation("add", f"add{i}", {"x": Ref(current), "y": Ref(f"r{i}")}, (Value(f"a{i}", act),)))
        current = f"a{i}"
    main = Function("main", "ios17", (Value("x", act),), ops, (current,))
    return Program("1.0", {"main": main})


@pytest.fixture(scope="module")
def mlmodelc(tmp_path_factory):
    from bench.engines.reference.ops import registered_kernels

    missing = {"conv", "mul", "relu", "add"} - set(registered_kernels())
    if missing:
        pytest.skip(f"kernels not registered yet: {sorted(missing)}")
    return reference.write_mlmodelc(_block_program(), tmp_path_factory.mktemp("load") / "blocks.mlmodelc")


@pytest.fixture(scope="module")
def mlpackage(tmp_path_factory, mlmodelc):
    """The same program as an .mlpackage, built with coremltools' MIL builder."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(BLOCKS):
            w = (rng.standard_normal((16, 16, 1, 1)) * 0.1).astype(np.float32)
            y = mb.relu(x=mb.mul(x=mb.conv(x=x, weight=w), y=np.float32(0.5)))
            x = mb.add(x=x, y=y)
        return x

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, pass_pipeline=ct.PassPipeline.EMPTY)
    path = tmp_path_factory.mktemp("load") / "blocks.mlpackage"
    model.save(str(path))
    return path


def test_load_mlmodelc(benchmark, mlmodelc):
    model = benchmark(reference.load, mlmodelc)
    assert model.op_count == 4 * BLOCKS


def test_load_mlpackage(benchmark, mlpackage):
    model = benchmark(reference.load, mlpackage)
    assert model.op_count >= 4 * BLOCKS


def test_predict_dispatch(benchmark, mlmodelc):
    model = reference.load(mlmodelc)
    x = {"x": np.random.default_rng(1).standard_normal((1, 16, 4, 4)).astype(np.float32)}
    out = benchmark(model.predict, x)
    assert np.isfinite(next(iter(out.values()))).all()
    benchmark.extra_info["ops"] = model.op_count
