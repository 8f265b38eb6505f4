"""Compiled-folder writer and reader: layout, metadata.json, and what the rest of bench reads from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mil_programs import const, conv_add_program, op, program, t

from bench.engines.reference.mlmodelc import read_mlmodelc, storage_precision, write_mlmodelc
from bench.errors import ModelFormatError


def test_layout_and_metadata(tmp_path):
    prog, _ = conv_add_program()
    prog.metadata.update({"com.github.apple.coremltools.version": "9.0", "specificationVersion": "8"})
    folder = write_mlmodelc(prog, tmp_path / "Unet.mlmodelc")
    assert {p.name for p in folder.iterdir()} == {"model.mil", "weights", "metadata.json"}
    meta = json.loads((folder / "metadata.json").read_text())[0]
    assert meta["inputSchema"] == [
        {"name": "x", "type": "MultiArray", "dataType": "Float32", "shape": "[1, 3, 8, 8]", "hasShapeFlexibility": "0"}
    ]
    assert meta["outputSchema"][0]["name"] == "y" and meta["outputSchema"][0]["shape"] == "[1, 4, 8, 8]"
    assert meta["mlProgramOperationTypeHistogram"] == {"const": 4, "conv": 1, "add": 1}
    assert meta["storagePrecision"] == "Float32"
    assert meta["specificationVersion"] == 8
    assert meta["userDefinedMetadata"] == {"com.github.apple.coremltools.version": "9.0"}
    again = read_mlmodelc(folder)
    assert again.metadata == {"com.github.apple.coremltools.version": "9.0", "specificationVersion": "8"}


def test_bench_model_metadata_reader_understands_the_written_folder(tmp_path):
    from bench.models.metadata import read_model_info

    prog, _ = conv_add_program()
    folder = write_mlmodelc(prog, tmp_path / "VAEDecoder.mlmodelc")
    info = read_model_info(folder)
    assert info.inputs == {"x": (1, 3, 8, 8)} and info.outputs == {"y": (1, 4, 8, 8)}
    assert info.op_histogram["conv"] == 1


def test_storage_precision_names_float_lut_and_int8_weights():
    big16 = np.zeros(16, np.float16)
    lut = op("constexpr_lut_to_dense", "w4", [("w4", t("fp16", 16))])
    lut.inputs.update(indices=np.zeros(16, np.uint8), lut=np.zeros((1, 16, 1), np.float16))
    prog = program([], [const("a", big16), lut], ["a"])
    assert storage_precision(prog.main) == "Mixed (Float16, Palettized (4 bits))"
    assert storage_precision(program([], [const("s", np.float32(1))], ["s"]).main) == ""


def test_a_folder_without_weights_has_no_weight_file(tmp_path):
    prog = program([("x", t("fp32", 2))], [op("relu", "r", [("y", t("fp32", 2))], x="x")], ["y"])
    folder = write_mlmodelc(prog, tmp_path / "tiny.mlmodelc")
    assert not (folder / "weights").exists()
    assert read_mlmodelc(folder).main.operations[0].type == "relu"


def test_corrupt_metadata_json(tmp_path):
    prog, _ = conv_add_program()
    folder = write_mlmodelc(prog, tmp_path / "m.mlmodelc")
    (folder / "metadata.json").write_text("[{")
    with pytest.raises(ModelFormatError, match=r"metadata\.json: corrupt metadata\.json"):
        read_mlmodelc(folder)


def test_not_utf8_model_mil(tmp_path):
    (tmp_path / "model.mil").write_bytes(b"program(1.0)\n\xff\xfe")
    with pytest.raises(ModelFormatError, match="not UTF-8 text at byte 13"):
        read_mlmodelc(tmp_path)
