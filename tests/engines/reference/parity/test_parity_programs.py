"""The converted programs as the engine reads them: every op type has a kernel, and the specs
describe the torch modules' interface (names, shapes, dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from parity_cases import ALL_CONFIGS, cases

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.mark.parametrize(("config", "precision"), cases(ALL_CONFIGS))
def test_every_converted_op_type_has_a_kernel(converted, config, precision):
    from bench.engines.reference.ops import registered_kernels

    conv = converted(config, precision)
    missing = sorted(t for t in conv.op_counts if t != "const" and t not in registered_kernels())
    assert not missing, f"{conv.path.name}: no kernel for {missing} (op counts {dict(conv.op_counts)})"


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.name)
def test_specs_describe_the_torch_interface(converted, config):
    from bench.engines import reference

    conv = converted(config, "fp32")
    model = reference.load(conv.path)
    assert [(s.name, tuple(s.shape), np.dtype(s.dtype)) for s in model.input_specs] == [
        (name, value.shape, value.dtype) for name, value in conv.inputs.items()
    ]
    assert [(s.name, tuple(s.shape), np.dtype(s.dtype)) for s in model.output_specs] == [
        (name, value.shape, np.dtype(np.float32)) for name, value in conv.expected.items()
    ]
