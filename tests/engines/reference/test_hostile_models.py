"""Hostile model files: every one is refused with a one-line ModelFormatError naming the file and the
line, op or key, before the work it asks for (paths out of the folder, impossible weight headers,
shapes over the memory budget, huge or deeply nested literals)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mil_programs import conv_add_program

from bench.engines.reference import load, weights
from bench.engines.reference.mil_text import parse_program
from bench.engines.reference.mlmodelc import read_mlmodelc, write_mlmodelc
from bench.engines.reference.proto_loader import package_paths, read_mlpackage
from bench.errors import ModelFormatError
from bench.limits import (
    MEMORY_BUDGET_ENV,
    MIL_MAX_FILE_BYTES,
    MIL_MAX_LITERAL_ELEMENTS,
    MIL_MAX_NESTING,
    MIL_MAX_STATEMENT_CHARS,
)

MiB = 1 << 20


def refused(action: Callable[[], object], match: str, *, peak_below: int = 64 * MiB) -> str:
    """Run `action`, expect a one-line ModelFormatError matching `match`, and check the Python heap
    (numpy included: it reports to tracemalloc) never grew by `peak_below` bytes on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match=match) as caught:
            action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < peak_below, f"peak {peak / MiB:.1f} MiB"
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    program, _ = conv_add_program()
    return write_mlmodelc(program, tmp_path / "model.mlmodelc")


def _edit_mil(folder: Path, old: str, new: str) -> None:
    path = folder / "model.mil"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# -- paths out of the model folder -----------------------------------------------------------------


def test_blobfile_path_out_of_the_folder_is_refused(compiled: Path, tmp_path: Path) -> None:
    # a readable weight file outside the model: the loader must not follow the path to it
    outside = tmp_path / "secret.bin"
    shutil.copy(compiled / "weights" / "weight.bin", outside)
    _edit_mil(compiled, "@model_path/weights/weight.bin", "@model_path/../secret.bin")
    message = refused(lambda: read_mlmodelc(compiled), r"does not stay inside")
    assert "model.mil:4: op 'w' (const)" in message


def test_blobfile_symlink_out_of_the_folder_is_refused(compiled: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.bin"
    (compiled / "weights" / "weight.bin").rename(outside)
    os.symlink(outside, compiled / "weights" / "weight.bin")
    refused(lambda: read_mlmodelc(compiled), r"leads out of")


def test_manifest_spec_path_out_of_the_package_is_refused(tmp_path: Path) -> None:
    from mil_programs import cached_mlpackage

    package = tmp_path / "m.mlpackage"
    shutil.copytree(cached_mlpackage("iOS17"), package)
    manifest = json.loads((package / "Manifest.json").read_text())
    root_id = manifest["rootModelIdentifier"]
    manifest["itemInfoEntries"][root_id]["path"] = "../../outside/model.mlmodel"
    (package / "Manifest.json").write_text(json.dumps(manifest))
    refused(lambda: package_paths(package), r"Manifest\.json: root model path: path '\.\./\.\./outside/model\.mlmodel' does not stay inside")


def test_mlpackage_weight_symlink_out_of_the_package_is_refused(tmp_path: Path) -> None:
    from mil_programs import cached_mlpackage

    package = tmp_path / "m.mlpackage"
    shutil.copytree(cached_mlpackage("iOS17"), package)
    _, weights_dir = package_paths(package)
    outside = tmp_path / "elsewhere.bin"
    (weights_dir / "weight.bin").rename(outside)
    os.symlink(outside, weights_dir / "weight.bin")
    refused(lambda: read_mlpackage(package), r"leads out of .*read for op")


# -- weight.bin headers and sizes ------------------------------------------------------------------


def _patch_header(folder: Path, count: int, version: int) -> None:
    path = folder / "weights" / "weight.bin"
    data = bytearray(path.read_bytes())
    struct.pack_into("<II", data, 0, count, version)
    path.write_bytes(bytes(data))


def test_weight_file_of_an_unknown_version_is_refused(compiled: Path) -> None:
    _patch_header(compiled, 1, 99)
    message = refused(lambda: read_mlmodelc(compiled), r"weight file version 99; only version 2")
    assert "weight.bin" in message and "op 'w'" in message


def test_weight_file_claiming_more_blobs_than_it_can_hold_is_refused(compiled: Path) -> None:
    _patch_header(compiled, 2**32 - 1, 2)
    refused(lambda: weights.WeightFile(compiled / "weights" / "weight.bin"), r"header claims 4294967295 blobs")


def test_constant_shape_whose_product_overflows_int64_names_the_op(compiled: Path) -> None:
    # 2^32 * 2^32 wraps to 0 in int64: a reader multiplying in numpy would read an empty weight
    _edit_mil(compiled, "tensor<fp32, [4, 3, 3, 3]> w", "tensor<fp32, [4294967296, 4294967296]> w")
    _edit_mil(compiled, "val = tensor<fp32, [4, 3, 3, 3]>(BLOBFILE", "val = tensor<fp32, [4294967296, 4294967296]>(BLOBFILE")
    message = refused(lambda: read_mlmodelc(compiled), r"op 'w' \(const\): a tensor of shape \[4294967296, 4294967296\] needs")
    assert "memory budget" in message


def test_blob_shape_over_the_memory_budget_is_refused_before_reading(compiled: Path, monkeypatch) -> None:
    _edit_mil(compiled, "tensor<fp32, [4, 3, 3, 3]> w", "tensor<fp32, [1000, 1000]> w")
    _edit_mil(compiled, "val = tensor<fp32, [4, 3, 3, 3]>(BLOBFILE", "val = tensor<fp32, [1000, 1000]>(BLOBFILE")
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1M")
    refused(lambda: read_mlmodelc(compiled), r"op 'w' \(const\): a tensor of shape \[1000, 1000\] needs 3\.8 MiB, over the memory budget of 1\.0 MiB")


def test_sub_byte_blob_decoding_over_the_memory_budget_is_refused(tmp_path: Path, monkeypatch) -> None:
    writer = weights.WeightWriter()
    offset = writer.add(np.zeros(4096, np.uint8), "uint4")
    writer.write(tmp_path / "w.bin")
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "16K")  # unpacking 4096 4-bit values peaks at 48 KiB
    refused(lambda: weights.WeightFile(tmp_path / "w.bin").read(offset, "uint4", (4096,)), r"decoding uint4\[4096\]")


def test_proto_constant_shape_whose_product_overflows_names_the_op(tmp_path: Path) -> None:
    from mil_programs import cached_mlpackage

    from bench.engines.reference.proto_loader import read_spec

    package = tmp_path / "m.mlpackage"
    shutil.copytree(cached_mlpackage("iOS17"), package)
    spec = read_spec(package)
    block = next(iter(spec.mlProgram.functions.values())).block_specializations["CoreML7"]
    weight = next(op for op in block.operations if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue")
    dims = weight.attributes["val"].type.tensorType.dimensions
    del dims[:]
    for _ in range(2):
        dims.add().constant.size = 2**32
    spec_path, _ = package_paths(package)
    spec_path.write_bytes(spec.SerializeToString())
    message = refused(lambda: read_mlpackage(package), r"a tensor of shape \[4294967296, 4294967296\] needs 64\.0 EiB|needs .* over the memory budget")
    assert f"op '{weight.attributes['name'].immediateValue.tensor.strings.values[0]}' (const), attribute 'val'" in message


# -- model.mil size, lines, literals, nesting ------------------------------------------------------


def test_model_mil_over_the_file_limit_is_refused_before_reading(tmp_path: Path) -> None:
    folder = tmp_path / "big.mlmodelc"
    folder.mkdir()
    with open(folder / "model.mil", "wb") as handle:  # sparse: 200 MB more than the limit, no disk used
        handle.truncate(MIL_MAX_FILE_BYTES + 200 * 1000 * 1000)
    refused(lambda: read_mlmodelc(folder), r"model\.mil is .* over the limit of 256\.0 MiB", peak_below=1 * MiB)


def _literal_program(payload_lines: list[str]) -> str:
    return (
        "program(1.0)\n{\n    func main<ios17>(tensor<fp32, [1]> x) {\n"
        "        tensor<fp32, [2]> c = const()[name = string(\"c\"), val = tensor<fp32, [2]>([\n"
        + "\n".join(payload_lines)
        + "\n])];\n    } -> (c);\n}\n"
    )


def test_a_200_mb_list_literal_on_one_line_is_refused_at_the_line_limit(tmp_path: Path) -> None:
    folder = tmp_path / "m.mlmodelc"
    folder.mkdir()
    head, tail = _literal_program(["@"]).split("@")
    chunk = "1.5," * (1 << 20)  # 4 MB
    with open(folder / "model.mil", "w") as handle:  # a real 200 MB literal, on one line
        handle.write(head)
        for _ in range(50):
            handle.write(chunk)
        handle.write("0" + tail)
    message = refused(lambda: read_mlmodelc(folder), r"model\.mil:5: line is longer than 1048576 characters", peak_below=16 * MiB)
    assert str(folder / "model.mil") in message


def test_a_list_literal_over_many_lines_is_refused_at_the_statement_limit(tmp_path: Path) -> None:
    folder = tmp_path / "m.mlmodelc"
    folder.mkdir()
    line = "1.5, " * 200
    lines = [line] * (MIL_MAX_STATEMENT_CHARS // len(line) + 10)
    (folder / "model.mil").write_text(_literal_program(lines))
    # refused while reading: the literal's tokens are never built (a few MB of text, not GBs of tokens)
    refused(lambda: read_mlmodelc(folder), r"model\.mil:4: statement is longer than 1048576 characters", peak_below=32 * MiB)


def test_a_literal_with_too_many_elements_is_refused(tmp_path: Path) -> None:
    text = _literal_program(["0," * 1000] * (MIL_MAX_LITERAL_ELEMENTS // 1000 + 1))
    refused(lambda: parse_program(text, "m.mil"), r"m\.mil:\d+: op 'c' \(const\): inline literal has more than 100000 elements")


def test_deeply_nested_list_literal_is_refused_without_recursion_error() -> None:
    depth = 5000  # far past Python's recursion limit
    text = _literal_program(["[" * depth + "1" + "]" * depth])
    refused(lambda: parse_program(text, "m.mil"), rf"m\.mil:5: op 'c' \(const\): nesting deeper than {MIL_MAX_NESTING} levels")


def test_deeply_nested_types_are_refused_without_recursion_error() -> None:
    depth = 5000
    text = (
        "program(1.0)\n{\n    func main<ios17>(" + "list<" * depth + "fp32" + ">" * depth + " x) {\n    } -> (x);\n}\n"
    )
    refused(lambda: parse_program(text, "m.mil"), rf"m\.mil:3: nesting deeper than {MIL_MAX_NESTING} levels")


def test_tokens_over_the_memory_budget_are_refused(monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "10K")  # about a hundred tokens
    text = _literal_program(["1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"] * 20)
    refused(lambda: parse_program(text, "m.mil"), r"m\.mil:\d+: more than \d+ tokens would exceed the memory budget of 10\.0 KiB")


@pytest.mark.parametrize(
    ("dimension", "match"),
    [("99999999999999999999999", r"dimension 99999999999999999999999 is above 2\^62"), ("9" * 5000, r"is above 2\^62")],
)
def test_absurd_dimensions_are_refused(dimension: str, match: str) -> None:
    text = f"program(1.0)\n{{\n    func main<ios17>(tensor<fp32, [{dimension}]> x) {{\n    }} -> (x);\n}}\n"
    refused(lambda: parse_program(text, "m.mil"), match)


def test_absurd_numbers_are_refused() -> None:
    text = _literal_program(["9" * 5000 + ", 0x1p+99999999999999"])
    refused(lambda: parse_program(text, "m.mil"), r"m\.mil:\d+: op 'c' \(const\): bad number")


def test_deeply_nested_metadata_json_is_refused(compiled: Path) -> None:
    (compiled / "metadata.json").write_text("[" * 100000 + "]" * 100000)
    refused(lambda: read_mlmodelc(compiled), r"metadata\.json: corrupt metadata\.json")


def test_a_valid_model_still_loads_and_runs(compiled: Path) -> None:
    model = load(compiled)
    out = model.predict({"x": np.ones((1, 3, 8, 8), np.float32)})
    assert out["y"].shape == (1, 4, 8, 8)
