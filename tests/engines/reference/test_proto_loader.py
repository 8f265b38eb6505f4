"""The .mlpackage loader on programs converted by coremltools for iOS15 ... iOS18, and on bad packages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from mil_programs import TARGETS

from bench.engines.reference import weights
from bench.engines.reference.graph import Ref, deployment_target
from bench.engines.reference.proto_loader import package_paths, read_mlpackage
from bench.errors import ModelFormatError, UnsupportedOpError


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_reads_every_deployment_target(packages, target, precision):
    program = read_mlpackage(packages[target, precision])
    main = program.main
    assert deployment_target(main.opset) == target
    assert program.version == ("1.3" if target == "iOS18" else "1.0")
    assert [(v.name, v.type.dtype, v.type.shape) for v in main.inputs] == [("x", "fp32", (1, 3, 8, 8))]
    types = main.value_types()
    assert types[main.outputs[0]].shape == (1, 8, 8, 8)
    kinds = [op.type for op in main.operations if op.type != "const"]
    expected = ["conv", "split", "concat"]
    assert kinds == (["cast", *expected, "cast"] if precision == "fp16" else expected)
    ops = {op.type: op for op in main.operations}
    assert isinstance(ops["concat"].inputs["values"], tuple) and len(ops["concat"].inputs["values"]) == 2
    assert len(ops["split"].outputs) == 2
    assert program.metadata["com.github.apple.coremltools.version"]
    assert "buildInfo" in program.attributes


def test_weights_come_from_weight_bin_with_the_declared_dtype(packages):
    rng = np.random.default_rng(1)  # the same draws build_mlpackage makes
    weight = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    for precision, dtype in (("fp32", np.float32), ("fp16", np.float16)):
        main = read_mlpackage(packages["iOS17", precision]).main
        conv = next(op for op in main.operations if op.type == "conv")
        consts = {op.outputs[0].name: op.attributes["val"] for op in main.operations if op.type == "const"}
        w = consts[conv.inputs["weight"].name]
        assert w.dtype == dtype
        np.testing.assert_array_equal(w, weight.astype(dtype))
        # The 0.5 of the add was folded into the bias by coremltools.
        np.testing.assert_allclose(consts[conv.inputs["bias"].name], (bias + 0.5).astype(dtype), rtol=1e-3)
        assert isinstance(conv.inputs["x"], Ref)


def _copy(packages, tmp_path, key=("iOS17", "fp32")):
    target = tmp_path / "copy.mlpackage"
    shutil.copytree(packages[key], target)
    spec_path, weights_dir = package_paths(target)
    return target, spec_path, weights_dir / "weight.bin"


def test_missing_weight_bin_names_the_file_and_the_op(packages, tmp_path):
    path, _, weight_bin = _copy(packages, tmp_path)
    weight_bin.unlink()
    with pytest.raises(ModelFormatError, match=r"weight\.bin: weight file is missing \(read for op '[^']+' \(const\), attribute 'val'"):
        read_mlpackage(path)


def test_truncated_weight_bin(packages, tmp_path):
    path, _, weight_bin = _copy(packages, tmp_path)
    weight_bin.write_bytes(weight_bin.read_bytes()[:200])
    with pytest.raises(ModelFormatError, match=r"weight\.bin: blob at offset 64.*truncated"):
        read_mlpackage(path)


def test_bad_blob_marker(packages, tmp_path):
    path, _, weight_bin = _copy(packages, tmp_path)
    raw = bytearray(weight_bin.read_bytes())
    raw[64:68] = b"\x01\x02\x03\x04"
    weight_bin.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="marker 0x04030201, expected 0xDEADBEEF"):
        read_mlpackage(path)


def test_corrupt_spec(packages, tmp_path):
    path, spec_path, _ = _copy(packages, tmp_path)
    spec_path.write_bytes(b"\xff\xff\xff garbage" * 10)
    with pytest.raises(ModelFormatError, match=r"model\.mlmodel: corrupt Core ML spec"):
        read_mlpackage(path)


def test_corrupt_manifest(packages, tmp_path):
    path, _, _ = _copy(packages, tmp_path)
    (path / "Manifest.json").write_text("{ not json")
    with pytest.raises(ModelFormatError, match=r"Manifest\.json: corrupt manifest"):
        read_mlpackage(path)
    (path / "Manifest.json").write_text(json.dumps({"itemInfoEntries": {}, "rootModelIdentifier": "x"}))
    with pytest.raises(ModelFormatError, match=r"Manifest\.json: corrupt manifest \(KeyError"):
        read_mlpackage(path)
    (path / "Manifest.json").unlink()
    with pytest.raises(ModelFormatError, match="Manifest.json is missing"):
        read_mlpackage(path)


def test_neural_network_models_are_refused(packages, tmp_path):
    from coremltools.proto import Model_pb2

    path, spec_path, _ = _copy(packages, tmp_path)
    spec = Model_pb2.Model()
    spec.specificationVersion = 4
    spec.neuralNetwork.SetInParent()
    spec_path.write_bytes(spec.SerializeToString())
    with pytest.raises(ModelFormatError, match="holds a neuralNetwork model; the reference engine runs ML Programs only"):
        read_mlpackage(path)


def test_control_flow_is_reported_as_unsupported(packages, tmp_path):
    from coremltools.proto import Model_pb2

    path, spec_path, _ = _copy(packages, tmp_path)
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    block.operations[-1].blocks.add()
    spec_path.write_bytes(spec.SerializeToString())
    with pytest.raises(UnsupportedOpError, match="has nested blocks; control flow is not supported"):
        read_mlpackage(path)


def test_weight_file_reader_matches_coremltools_packing_of_sub_byte_immediates():
    # Immediate (non-blob) sub-byte values are stored packed in the protobuf `bytes` field.
    from coremltools.optimize._utils import pack_elements_into_bits

    values = np.array([[0, 5, 15], [7, 8, 1]], dtype=np.uint8)
    raw = pack_elements_into_bits(values.reshape(-1), 4).tobytes()
    np.testing.assert_array_equal(weights.decode(raw, "uint4", (2, 3)), values)
