"""Reader and writer of Core ML's `weight.bin` blob files.

Hand-written because coremltools' blob reader is a compiled extension that only ships on macOS
wheels (`libmilstoragepython`), and its writer is not public either.

Layout (as coremltools' MILBlob writer lays it out): a 64-byte file header (`uint32 count`, `uint32 version = 2`);
each blob that a `BLOBFILE(offset=N)` points at starts with a 64-byte record
(`uint32 0xDEADBEEF`, `uint32 dtype code`, `uint64 size in bytes`, `uint64 data offset`), and its
data sits 64-byte aligned. Sub-byte types (`uint1/2/3/4/6`, `int4`) are packed LSB first.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bench.errors import ModelFormatError
from bench.limits import check_allocation, shape_elements

BLOB_MARKER = 0xDEADBEEF
FILE_VERSION = 2
HEADER_SIZE = 64
RECORD_SIZE = 64
ALIGNMENT = 64

#: weight.bin dtype code -> MIL dtype name.
DTYPE_CODES: dict[int, str] = {
    1: "fp16",
    2: "fp32",
    3: "uint8",
    4: "int8",
    5: "bf16",
    6: "int16",
    7: "uint16",
    8: "int4",
    9: "uint1",
    10: "uint2",
    11: "uint4",
    12: "uint3",
    13: "uint6",
    14: "int32",
    15: "uint32",
}
CODES_BY_DTYPE: dict[str, int] = {name: code for code, name in DTYPE_CODES.items()}

#: Bits per element of the sub-byte MIL dtypes.
SUB_BYTE_BITS: dict[str, int] = {"uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6, "int4": 4}

_STORAGE: dict[str, np.dtype] = {
    "fp16": np.dtype("<f2"),
    "fp32": np.dtype("<f4"),
    "uint8": np.dtype("u1"),
    "int8": np.dtype("i1"),
    "bf16": np.dtype("<u2"),
    "int16": np.dtype("<i2"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
}

_HEADER = struct.Struct("<II")
_RECORD = struct.Struct("<IIQQ")


def packed_size(dtype: str, count: int) -> int:
    """Bytes that `count` elements of MIL `dtype` take in a blob."""
    if dtype in SUB_BYTE_BITS:
        return (count * SUB_BYTE_BITS[dtype] + 7) // 8
    return count * _STORAGE[dtype].itemsize


def unpack_bits(data: np.ndarray, nbits: int, count: int, signed: bool = False) -> np.ndarray:
    """Unpack `count` n-bit integers stored LSB first in the bytes `data`."""
    bits = np.unpackbits(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1), bitorder="little")
    if bits.size < count * nbits:
        raise ValueError(f"{data.size} bytes hold fewer than {count} {nbits}-bit values")
    bits = bits[: count * nbits].reshape(count, nbits)
    weights = (1 << np.arange(nbits, dtype=np.uint16)).astype(np.uint16)
    values = (bits.astype(np.uint16) @ weights).astype(np.uint8)
    if signed:
        out = values.astype(np.int16)
        out[out >= (1 << (nbits - 1))] -= 1 << nbits
        return out.astype(np.int8)
    return values


def pack_bits(values: np.ndarray, nbits: int) -> bytes:
    """Pack integers into n-bit fields, LSB first (the inverse of `unpack_bits`)."""
    flat = np.asarray(values).reshape(-1).astype(np.int64) & ((1 << nbits) - 1)
    bits = ((flat[:, None] >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little").tobytes()


def bf16_to_float32(raw: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bit patterns (uint16) to float32: bf16 is the top half of a float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bit patterns (round to nearest even)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def decode(raw: bytes | np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Decode the raw bytes of one value of MIL `dtype` and `shape` into its numpy form."""
    count = math.prod(shape)  # exact: a wrapped-around int64 product could match a short buffer
    buffer = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    if dtype in SUB_BYTE_BITS:
        values = unpack_bits(buffer, SUB_BYTE_BITS[dtype], count, signed=dtype == "int4")
        return values.reshape(shape)
    storage = _STORAGE.get(dtype)
    if storage is None:
        raise ValueError(f"MIL dtype {dtype!r} cannot be stored in a blob")
    array = np.frombuffer(buffer, dtype=storage, count=count)
    if dtype == "bf16":
        return bf16_to_float32(array).reshape(shape)
    return array.reshape(shape).astype(storage.newbyteorder("="), copy=False)


def encode(value: np.ndarray, dtype: str) -> bytes:
    """Raw blob bytes of `value` stored as MIL `dtype` (inverse of `decode`)."""
    if dtype in SUB_BYTE_BITS:
        return pack_bits(value, SUB_BYTE_BITS[dtype])
    if dtype == "bf16":
        return float32_to_bf16(value).astype("<u2").tobytes()
    return np.ascontiguousarray(value, dtype=_STORAGE[dtype]).tobytes()


class WeightFile:
    """One weight.bin, memory-mapped; `read` decodes the blob at an offset.

    Values stored in their own numpy dtype (fp16, fp32, int8, ...) are returned as read-only
    views of the mapping, as Core ML maps its weights: they cost page cache, not private memory,
    and nothing can write into them. Sub-byte and bf16 values are unpacked into new arrays.
    Every problem (missing file, a header of another version or claiming more blobs than the file
    can hold, bad marker, wrong dtype, truncated data, a decoded size over the memory budget) is a
    `ModelFormatError` naming the file and the offset.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            self._data = np.memmap(self.path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        except FileNotFoundError:
            raise ModelFormatError(f"{self.path}: weight file is missing") from None
        except OSError as error:
            raise ModelFormatError(f"{self.path}: cannot read weight file ({error.strerror})") from None
        if self._data.size < HEADER_SIZE:
            raise ModelFormatError(
                f"{self.path}: weight file is truncated ({self._data.size} bytes, "
                f"expected at least the {HEADER_SIZE}-byte header)"
            )
        self.count, self.version = _HEADER.unpack_from(self._data, 0)
        if self.version != FILE_VERSION:
            raise ModelFormatError(
                f"{self.path}: weight file version {self.version}; only version {FILE_VERSION} "
                "(Core ML's blob storage format since iOS 15) is supported"
            )
        most = (self._data.size - HEADER_SIZE) // RECORD_SIZE
        if self.count > most:
            raise ModelFormatError(
                f"{self.path}: header claims {self.count} blobs, but {self._data.size} bytes hold at most "
                f"{most} (each needs a {RECORD_SIZE}-byte record)"
            )

    @property
    def size(self) -> int:
        return int(self._data.size)

    def record(self, offset: int) -> tuple[str, int, int]:
        """(dtype, size in bytes, data offset) of the blob whose record sits at `offset`."""
        where = f"{self.path}: blob at offset {offset}"
        if offset < 0 or offset + RECORD_SIZE > self._data.size:
            raise ModelFormatError(f"{where} lies past the end of the file ({self._data.size} bytes): truncated?")
        marker, code, size, data_offset = _RECORD.unpack_from(self._data, offset)
        if marker != BLOB_MARKER:
            raise ModelFormatError(f"{where} has marker 0x{marker:08X}, expected 0x{BLOB_MARKER:08X}")
        if code not in DTYPE_CODES:
            raise ModelFormatError(f"{where} has unknown dtype code {code}; expected one of {sorted(DTYPE_CODES)}")
        if data_offset + size > self._data.size:
            raise ModelFormatError(
                f"{where}: data [{data_offset}, {data_offset + size}) lies past the end of the file "
                f"({self._data.size} bytes): the file is truncated"
            )
        return DTYPE_CODES[code], int(size), int(data_offset)

    def read(self, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        """The value of MIL `dtype` and `shape` stored in the blob at `offset`."""
        stored, size, data_offset = self.record(offset)
        where = f"{self.path}: blob at offset {offset}"
        if stored != dtype:
            raise ModelFormatError(f"{where} holds {stored}, but the program declares {dtype}")
        count = shape_elements(shape, where, ModelFormatError)  # exact: no int64 wrap-around
        needed = packed_size(dtype, count)
        if size < needed:
            raise ModelFormatError(
                f"{where} holds {size} bytes, expected {needed} for {dtype}{list(shape)}"
            )
        if dtype in SUB_BYTE_BITS or dtype == "bf16":  # decoded into new memory (unpacking peaks at 3 bytes a bit)
            check_allocation(count * max(3 * SUB_BYTE_BITS.get(dtype, 0), 4), f"{where}: decoding {dtype}{list(shape)}", ModelFormatError)
        raw = self._data[data_offset : data_offset + needed]
        return decode(raw, dtype, shape)


class WeightWriter:
    """Builds a weight.bin: `add(value, dtype)` returns the offset that `BLOBFILE` refers to."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = HEADER_SIZE
        self._count = 0

    def add(self, value: np.ndarray, dtype: str) -> int:
        payload = encode(value, dtype)
        offset = self._size
        data_offset = offset + RECORD_SIZE
        record = _RECORD.pack(BLOB_MARKER, CODES_BY_DTYPE[dtype], len(payload), data_offset)
        record += b"\0" * (RECORD_SIZE - len(record))
        padding = (-len(payload)) % ALIGNMENT
        self._chunks.append(record + payload + b"\0" * padding)
        self._size = data_offset + len(payload) + padding
        self._count += 1
        return offset

    @property
    def count(self) -> int:
        return self._count

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(self._count, FILE_VERSION)
        return header + b"\0" * (HEADER_SIZE - len(header)) + b"".join(self._chunks)

    def write(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())


def release_mapped_pages(arrays: Iterable[object]) -> int:
    """Drop this process's resident pages of the weight files that `arrays` are views of; returns
    how many mappings were advised.

    Why: at load the engine reads every weight once (fp16 files are widened to float32 copies),
    and the touched pages of the mapping would stay counted in the process's RSS (as file-backed
    pages) for as long as the program holds its views, doubling the apparent footprint of a
    multi-GB UNet. MADV_DONTNEED on a read-only file mapping only unmaps the pages: they stay in
    the page cache, and a later read faults them back in with the same bytes.
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # not on this OS: nothing to do
        return 0
    seen: dict[int, mmap.mmap] = {}
    for array in arrays:
        base = array
        while isinstance(base, np.ndarray):
            if isinstance(base, np.memmap) and isinstance(getattr(base, "_mmap", None), mmap.mmap):
                seen[id(base._mmap)] = base._mmap
                break
            base = base.base
    for mapping in seen.values():
        try:
            mapping.madvise(advice)
        except (OSError, ValueError):  # a closed or unsupported mapping: the pages just stay
            pass
    return len(seen)
