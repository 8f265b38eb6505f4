"""phys_footprint decoding (the ctypes call itself runs only on macOS)."""

from __future__ import annotations

import platform
import struct

import pytest

from bench.measure.darwin import (
    LIFETIME_MAX_PHYS_FOOTPRINT_OFFSET,
    PHYS_FOOTPRINT_OFFSET,
    RESIDENT_SIZE_OFFSET,
    FootprintReader,
    decode_rusage,
    footprint_reader,
)


def test_offsets_are_the_rusage_info_v4_layout() -> None:
    # ri_uuid[16] then uint64 fields: user, system, pkg_idle_wkups, interrupt_wkups, pageins,
    # wired_size, resident_size (64), phys_footprint (72) ... lifetime_max_phys_footprint (240).
    assert (RESIDENT_SIZE_OFFSET, PHYS_FOOTPRINT_OFFSET, LIFETIME_MAX_PHYS_FOOTPRINT_OFFSET) == (64, 72, 240)


def test_decode_reads_the_documented_offsets() -> None:
    buffer = bytearray(296)
    struct.pack_into("<Q", buffer, 64, 111)
    struct.pack_into("<Q", buffer, 72, 2_222_222_222)
    struct.pack_into("<Q", buffer, 240, 3_333_333_333)
    assert decode_rusage(bytes(buffer)) == (111, 2_222_222_222, 3_333_333_333)


@pytest.mark.skipif(platform.system() == "Darwin", reason="off-macOS behaviour")
def test_unavailable_off_macos() -> None:
    reader, reason = footprint_reader()
    assert reader is None and "Darwin" in reason
    with pytest.raises(OSError):
        FootprintReader()


@pytest.mark.skipif(platform.system() != "Darwin", reason="proc_pid_rusage exists only on macOS")
def test_reads_this_process_on_macos() -> None:  # pragma: no cover - macOS only
    resident, footprint, lifetime_max = FootprintReader().read()
    assert resident > 0 and footprint > 0 and lifetime_max >= footprint
