"""phys_footprint on macOS: the memory figure Xcode shows and jetsam enforces.

psutil's RSS counts clean mmapped weight pages and misses compressed memory, so on Apple platforms
it can be far off the number that gets an app killed. `proc_pid_rusage(pid, RUSAGE_INFO_V4)` reports
`ri_phys_footprint` (byte offset 72) and `ri_lifetime_max_phys_footprint` (offset 240)
(<sys/resource.h>). No library wraps this call, hence ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct

RUSAGE_INFO_V4 = 4
RESIDENT_SIZE_OFFSET = 64
PHYS_FOOTPRINT_OFFSET = 72
LIFETIME_MAX_PHYS_FOOTPRINT_OFFSET = 240
# struct rusage_info_v4 is 296 bytes; a larger buffer is harmless and guards against layout growth.
_BUFFER_SIZE = 512

UNAVAILABLE_REASON = (
    "phys_footprint is a Darwin counter (proc_pid_rusage RUSAGE_INFO_V4); "
    f"this machine runs {platform.system() or 'an unknown OS'}, so peak_footprint rows are absent"
)


def decode_rusage(buffer: bytes) -> tuple[int, int, int]:
    """(resident_size, phys_footprint, lifetime_max_phys_footprint) from a rusage_info_v4 buffer."""
    (resident,) = struct.unpack_from("<Q", buffer, RESIDENT_SIZE_OFFSET)
    (footprint,) = struct.unpack_from("<Q", buffer, PHYS_FOOTPRINT_OFFSET)
    (lifetime_max,) = struct.unpack_from("<Q", buffer, LIFETIME_MAX_PHYS_FOOTPRINT_OFFSET)
    return int(resident), int(footprint), int(lifetime_max)


class FootprintReader:
    """Reads phys_footprint of one process through libproc's proc_pid_rusage."""

    def __init__(self, pid: int | None = None) -> None:
        if platform.system() != "Darwin":
            raise OSError(UNAVAILABLE_REASON)
        library = ctypes.util.find_library("proc") or "/usr/lib/libproc.dylib"
        try:
            self._libproc = ctypes.CDLL(library, use_errno=True)
        except OSError:
            self._libproc = ctypes.CDLL(ctypes.util.find_library("System"), use_errno=True)
        self._call = self._libproc.proc_pid_rusage
        self._call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        self._call.restype = ctypes.c_int
        self._pid = os.getpid() if pid is None else pid
        self._buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
        self.read()  # fail now, not in the sampler thread

    def read(self) -> tuple[int, int, int]:
        """(resident size, current phys_footprint, lifetime maximum footprint) in bytes."""
        if self._call(self._pid, RUSAGE_INFO_V4, self._buffer) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"proc_pid_rusage failed: {os.strerror(error)}")
        return decode_rusage(self._buffer.raw)


def footprint_reader(pid: int | None = None) -> tuple[FootprintReader | None, str | None]:
    """A reader where phys_footprint exists, else (None, why it is absent)."""
    try:
        return FootprintReader(pid), None
    except (OSError, AttributeError) as error:
        return None, str(error) if platform.system() == "Darwin" else UNAVAILABLE_REASON
