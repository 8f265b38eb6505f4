"""One writer per run folder: an advisory lock held for the run's life.

`bench run` creates a run folder and `bench run --resume` reopens one; either holds an exclusive
`flock` on `<run>/.lock` until it ends, so a second `--resume` of the same run refuses (exit 2,
naming the holder's PID and host) instead of running the same cases twice. The file also records
the holder; a clean release empties it, so a file still naming a process means that process died
holding it (the kernel released its flock) and the next holder says it takes over.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path

import psutil

from bench.errors import RunLockedError

LOCK_FILE = ".lock"


class RunLock:
    """An acquired lock on a run folder; `release()` (or process exit) lets it go."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.took_over: dict[str, object] | None = None  # the dead holder whose lock this replaced

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by another bench run (PID {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')}); wait for it or stop it"
            ) from None
        previous = _read_holder(fd)
        if previous:
            self.took_over = previous
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def describe_takeover(self) -> str | None:
        """A warning when this lock replaced one whose holder died without releasing it."""
        if not self.took_over:
            return None
        pid, host = self.took_over.get("pid"), self.took_over.get("host")
        same_host = host == platform.node()
        state = "no longer running" if same_host and isinstance(pid, int) and not psutil.pid_exists(pid) else "gone"
        return f"taking over the lock of {self.path.parent}: its holder (PID {pid} on {host}) is {state}"

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean release leaves no holder behind
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}
