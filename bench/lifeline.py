"""No orphan workers: a worker stops when its runner is gone or its case's time is up.

The runner starts each worker in its own process group and enforces the case's timeout itself. If
the runner dies (SIGKILL, a crash), nothing would stop a worker blocked inside a stage, so:

- `hold()` (in the worker, first thing) forks a tiny watchdog process that blocks reading the
  lifeline pipe whose write end only the runner holds. When the runner dies, the kernel closes that
  end, the read returns, and the watchdog SIGKILLs the worker's whole process group. A process,
  not a thread: a thread would need the GIL, which Core ML holds for a whole predict.
- On Linux the worker also asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG).
- An interval timer sends SIGALRM (default action: terminate, no Python involved) when the case's
  timeout plus a grace period has passed, so no worker outlives its case timeout.

`Interrupted` signals in the runner (`install_stop_handlers`) turn SIGINT, SIGTERM and SIGHUP into
an exception, so the runner stops the current worker's group and records the case as interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import warnings
from collections.abc import Iterator

from bench.errors import Interrupted

#: Seconds a worker may run past its case timeout before its own alarm ends it.
ALARM_GRACE = 10.0
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def hold(lifeline_fd: int, runner_pid: int, timeout: float | None) -> int:
    """Tie this worker's life to its runner's (see the module doc); return the watchdog's PID."""
    if platform.system() == "Linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still covers it
    with warnings.catch_warnings():  # 3.12+ warns about fork beside threads; the child only makes syscalls
        warnings.simplefilter("ignore", DeprecationWarning)
        watchdog = os.fork()
    if watchdog == 0:  # the watchdog: wait for the runner's end of the pipe to close
        _watch(lifeline_fd)
    os.close(lifeline_fd)
    if os.getppid() != runner_pid:  # the runner died before the watch was set up
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if timeout is not None:
        signal.setitimer(signal.ITIMER_REAL, timeout + ALARM_GRACE)
    return watchdog


def _watch(fd: int) -> None:
    try:
        for other in range(3, 256):  # keep nothing of the worker's open but the lifeline
            if other != fd:
                with contextlib.suppress(OSError):
                    os.close(other)
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os.killpg(os.getpgrp(), signal.SIGKILL)  # the worker and anything it started, this watchdog too
    finally:
        os._exit(0)


@contextlib.contextmanager
def install_stop_handlers() -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise `Interrupted` (main thread only)."""

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread: leave the handlers alone
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        previous = {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
