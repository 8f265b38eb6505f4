"""The reference engine: an interpreter of Core ML ML Programs (MIL) in numpy.

    from bench.engines import reference
    model = reference.load("Unet.mlmodelc", precision="fp32")   # or an .mlpackage
    model.input_specs, model.output_specs
    outputs = model.predict({"sample": ..., ...})
    model.profile(inputs).table()                                # where the time goes

It runs the same model files the Core ML framework runs, on Linux CI and any laptop. Loaders
(`proto_loader` for .mlpackage, `mlmodelc` + `mil_text` for compiled folders) build one
`graph.Program`; `interpreter` runs it with the numpy kernels registered in `ops`.
"""

from __future__ import annotations

from bench.engines.reference.engine import ENGINE, ReferenceEngine
from bench.engines.reference.graph import Program, first_difference
from bench.engines.reference.mlmodelc import read_mlmodelc, write_mlmodelc
from bench.engines.reference.model import ReferenceModel, load, read_program
from bench.engines.reference.precision import (
    ON_NONFINITE,
    PRECISIONS,
    NumericsReport,
    NumericsWarning,
)
from bench.engines.reference.profile import ProfileResult

__all__ = [
    "ENGINE",
    "ON_NONFINITE",
    "PRECISIONS",
    "NumericsReport",
    "NumericsWarning",
    "ProfileResult",
    "Program",
    "ReferenceEngine",
    "ReferenceModel",
    "first_difference",
    "load",
    "read_mlmodelc",
    "read_program",
    "write_mlmodelc",
]
