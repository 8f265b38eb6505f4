"""Fuzz the .mlpackage reader: mutated protobuf specs (bytes and fields) and mutated manifests."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "engines" / "reference"))
from fuzz.fuzzing import BOUNDARY_INTEGERS, FUZZ, FUZZ_MEMORY_BUDGET, loads_or_refuses, mutated
from mil_programs import cached_mlpackage

from bench.engines.reference.graph import Program
from bench.engines.reference.proto_loader import package_paths, read_mlpackage, read_spec
from bench.limits import MEMORY_BUDGET_ENV

pytestmark = pytest.mark.fuzz

_DIR = Path(tempfile.mkdtemp(prefix="fuzz-mlpackage-"))
_PACKAGE = _DIR / "m.mlpackage"
shutil.copytree(cached_mlpackage("iOS17", "fp16"), _PACKAGE)
_SPEC_PATH, _ = package_paths(_PACKAGE)
SPEC = _SPEC_PATH.read_bytes()
MANIFEST = (_PACKAGE / "Manifest.json").read_text()


@pytest.fixture(autouse=True)
def _budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, FUZZ_MEMORY_BUDGET)


def _read(spec: bytes, manifest: str = MANIFEST) -> object:
    _SPEC_PATH.write_bytes(spec)
    (_PACKAGE / "Manifest.json").write_text(manifest, encoding="utf-8", errors="surrogatepass")
    try:
        return loads_or_refuses(lambda: read_mlpackage(_PACKAGE))
    finally:
        _SPEC_PATH.write_bytes(SPEC)
        (_PACKAGE / "Manifest.json").write_text(MANIFEST)


@FUZZ
@given(spec=mutated([SPEC], [bytes([b]) for b in (0x00, 0x08, 0x0A, 0x12, 0x7F, 0x80, 0xFF)] + [b"\xff" * 10]))
def test_mutated_spec_bytes_load_or_are_refused(spec: bytes) -> None:
    result = _read(spec)
    if isinstance(result, Program):
        assert result.functions


def _ops(spec):
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            yield from block.operations


@st.composite
def mutated_fields(draw: st.DrawFn) -> bytes:
    """The seed spec with fields an attacker controls set to edge values: tensor dimensions and
    data types, weight-file names and offsets, op types, input names."""
    spec = read_spec(_PACKAGE)
    ops = list(_ops(spec))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        kind = draw(st.sampled_from(["dims", "dtype", "blob", "type", "input", "rank"]))
        values = [v for v in op.attributes.values() if v.type.WhichOneof("type") == "tensorType"]
        if kind in ("dims", "rank", "dtype", "blob") and not values:
            continue
        value = draw(st.sampled_from(values)) if values else None
        if kind == "dims" and len(value.type.tensorType.dimensions):
            dims = value.type.tensorType.dimensions
            dims[draw(st.integers(0, len(dims) - 1))].constant.size = draw(st.sampled_from(BOUNDARY_INTEGERS))
        elif kind == "rank":
            value.type.tensorType.dimensions.add().constant.size = draw(st.sampled_from(BOUNDARY_INTEGERS))
        elif kind == "dtype":
            value.type.tensorType.dataType = draw(st.integers(0, 300))
        elif kind == "blob" and value.WhichOneof("value") == "blobFileValue":
            value.blobFileValue.offset = draw(st.sampled_from(BOUNDARY_INTEGERS))
            value.blobFileValue.fileName = draw(st.sampled_from(
                ["@model_path/weights/weight.bin", "@model_path/../../Manifest.json", "/etc/passwd", "", "..", "@model_path/weights/"]
            ))  # fmt: skip
        elif kind == "type":
            op.type = draw(st.sampled_from(["const", "conv", "nonexistent", "", "cast"]))
        elif kind == "input" and op.inputs:
            argument = op.inputs[draw(st.sampled_from(sorted(op.inputs)))]
            if argument.arguments:
                argument.arguments[0].name = draw(st.sampled_from(["", "x", "undefined_name", op.outputs[0].name if op.outputs else "y"]))
    return spec.SerializeToString()


@FUZZ
@given(spec=mutated_fields())
def test_specs_with_edge_field_values_load_or_are_refused(spec: bytes) -> None:
    _read(spec)


@FUZZ
@given(manifest=mutated([MANIFEST], ['"path": "../../../../etc/passwd"', "[" * 2000, '"rootModelIdentifier": 5', "null", "{}", '"', "\\u0000"]))
@example(manifest=MANIFEST.replace('"path" : "com.apple.CoreML/model.mlmodel"', '"path" : "../../../x"').replace('"path": "com.apple.CoreML/model.mlmodel"', '"path": "../../../x"'))
@example(manifest="[" * 100000)
# found by this test: a spec path too long for the OS made `is_file` raise instead of answering
@example(manifest=MANIFEST.replace("com.apple.CoreML/model.mlmodel", "com.apple.CoreML/model" + ".mlmo" * 100 + ".mlmodel"))
def test_mutated_manifests_load_or_are_refused(manifest: str) -> None:
    _read(SPEC, manifest)
