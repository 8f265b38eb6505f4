"""weight.bin reader and writer: every dtype code, sub-byte packing, and each way a file can be bad."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from bench.engines.reference import weights
from bench.errors import ModelFormatError

RNG = np.random.default_rng(7)

VALUES = {
    "fp16": RNG.standard_normal((3, 5)).astype(np.float16),
    "fp32": RNG.standard_normal((2, 3, 4)).astype(np.float32),
    "uint8": RNG.integers(0, 256, (17,)).astype(np.uint8),
    "int8": RNG.integers(-128, 128, (4, 4)).astype(np.int8),
    "int16": RNG.integers(-(2**15), 2**15, (9,)).astype(np.int16),
    "uint16": RNG.integers(0, 2**16, (9,)).astype(np.uint16),
    "int32": RNG.integers(-(2**31), 2**31, (6,)).astype(np.int32),
    "uint32": RNG.integers(0, 2**32, (6,)).astype(np.uint32),
    "int4": RNG.integers(-8, 8, (3, 7)).astype(np.int8),
    "uint1": RNG.integers(0, 2, (13,)).astype(np.uint8),
    "uint2": RNG.integers(0, 4, (11,)).astype(np.uint8),
    "uint3": RNG.integers(0, 8, (2, 9)).astype(np.uint8),
    "uint4": RNG.integers(0, 16, (5, 3)).astype(np.uint8),
    "uint6": RNG.integers(0, 64, (7,)).astype(np.uint8),
}


def test_every_dtype_code_round_trips(tmp_path):
    writer = weights.WeightWriter()
    offsets = {dtype: writer.add(value, dtype) for dtype, value in VALUES.items()}
    bf16 = np.array([1.0, -2.5, 3.140625, 1e-3], dtype=np.float32)
    offsets["bf16"] = writer.add(bf16, "bf16")
    path = tmp_path / "weight.bin"
    writer.write(path)

    reader = weights.WeightFile(path)
    assert (reader.count, reader.version) == (len(offsets), 2)
    for dtype, value in VALUES.items():
        got = reader.read(offsets[dtype], dtype, value.shape)
        assert got.shape == value.shape
        np.testing.assert_array_equal(got, value, err_msg=dtype)
        assert offsets[dtype] % 64 == 0
        stored, _, data_offset = reader.record(offsets[dtype])
        assert stored == dtype and data_offset % 64 == 0
    got = reader.read(offsets["bf16"], "bf16", (4,))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, bf16, rtol=2**-8)
    assert set(weights.DTYPE_CODES.values()) == set(VALUES) | {"bf16"}


def test_header_and_record_layout_match_the_documented_format(tmp_path):
    writer = weights.WeightWriter()
    offset = writer.add(np.arange(3, dtype=np.float16), "fp16")
    raw = writer.to_bytes()
    assert struct.unpack_from("<II", raw, 0) == (1, 2)
    assert offset == 64
    marker, code, size, data_offset = struct.unpack_from("<IIQQ", raw, 64)
    assert (marker, code, size, data_offset) == (0xDEADBEEF, 1, 6, 128)
    assert np.frombuffer(raw[128:134], np.float16).tolist() == [0, 1, 2]


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6])
def test_sub_byte_packing_is_lsb_first_like_coremltools(nbits):
    from coremltools.optimize._utils import pack_elements_into_bits

    values = RNG.integers(0, 2**nbits, (37,)).astype(np.uint8)
    ours = weights.pack_bits(values, nbits)
    theirs = pack_elements_into_bits(values, nbits).tobytes()
    assert ours == theirs
    np.testing.assert_array_equal(weights.unpack_bits(np.frombuffer(ours, np.uint8), nbits, 37), values)


def test_lsb_first_by_hand():
    # Two uint4 values 0x1 and 0x2 pack to one byte 0x21; uint2 [1, 2, 3, 0] -> 0b00111001.
    assert weights.pack_bits(np.array([1, 2]), 4) == bytes([0x21])
    assert weights.pack_bits(np.array([1, 2, 3, 0]), 2) == bytes([0b00111001])
    assert weights.unpack_bits(np.array([0xF8], np.uint8), 4, 2, signed=True).tolist() == [-8, -1]


def _file_with_one_blob(tmp_path):
    writer = weights.WeightWriter()
    offset = writer.add(np.arange(8, dtype=np.float16), "fp16")
    path = tmp_path / "weight.bin"
    writer.write(path)
    return path, offset


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelFormatError, match=r"weight\.bin: weight file is missing"):
        weights.WeightFile(tmp_path / "weight.bin")


def test_file_shorter_than_header(tmp_path):
    path = tmp_path / "weight.bin"
    path.write_bytes(b"\x01\x00")
    with pytest.raises(ModelFormatError, match="truncated.*64-byte header"):
        weights.WeightFile(path)


def test_truncated_data_names_file_and_offset(tmp_path):
    path, offset = _file_with_one_blob(tmp_path)
    path.write_bytes(path.read_bytes()[: 128 + 4])
    with pytest.raises(ModelFormatError, match=rf"weight\.bin: blob at offset {offset}.*truncated"):
        weights.WeightFile(path).read(offset, "fp16", (8,))


def test_offset_past_end(tmp_path):
    path, _ = _file_with_one_blob(tmp_path)
    with pytest.raises(ModelFormatError, match="offset 4096 lies past the end"):
        weights.WeightFile(path).read(4096, "fp16", (8,))


def test_bad_marker(tmp_path):
    path, offset = _file_with_one_blob(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 4] = b"\0\0\0\0"
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="marker 0x00000000, expected 0xDEADBEEF"):
        weights.WeightFile(path).read(offset, "fp16", (8,))


def test_declared_dtype_must_match_the_blob(tmp_path):
    path, offset = _file_with_one_blob(tmp_path)
    with pytest.raises(ModelFormatError, match="holds fp16, but the program declares fp32"):
        weights.WeightFile(path).read(offset, "fp32", (8,))


def test_blob_smaller_than_declared_shape(tmp_path):
    path, offset = _file_with_one_blob(tmp_path)
    with pytest.raises(ModelFormatError, match=r"holds 16 bytes, expected 32 for fp16\[16\]"):
        weights.WeightFile(path).read(offset, "fp16", (16,))


def test_unknown_dtype_code(tmp_path):
    path, offset = _file_with_one_blob(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[offset + 4 : offset + 8] = struct.pack("<I", 99)
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="unknown dtype code 99"):
        weights.WeightFile(path).read(offset, "fp16", (8,))


def test_released_weight_pages_leave_rss_and_read_back_unchanged(tmp_path):
    """After load the engine drops the resident pages of weight.bin: views still read the same bytes."""
    from bench.engines.reference.weights import release_mapped_pages

    values = np.arange(8 << 20, dtype=np.float32).reshape(2048, -1)  # 32 MiB
    writer = weights.WeightWriter()
    offset = writer.add(values, "fp32")
    writer.write(tmp_path / "weight.bin")
    view = weights.WeightFile(tmp_path / "weight.bin").read(offset, "fp32", values.shape)

    def file_rss() -> int | None:
        status = Path("/proc/self/status")
        if not status.exists():
            return None
        line = next((x for x in status.read_text().splitlines() if x.startswith("RssFile:")), None)
        return int(line.split()[1]) * 1024 if line else None

    assert float(view.sum(dtype=np.float64)) == float(values.sum(dtype=np.float64))  # touch every page
    before = file_rss()
    assert release_mapped_pages([view, values, "not an array"]) == 1
    after = file_rss()
    if before is not None and after is not None:
        assert before - after >= 16 << 20, f"RssFile {before} -> {after}: the mapped pages stayed resident"
    np.testing.assert_array_equal(view, values)
