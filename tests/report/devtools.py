"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`, for the HTML report test.

Hand-written because the pipe transport is just NUL-terminated JSON on fds 3 and 4 (no websocket
library needed); it opens a page, records failed requests, console errors and exceptions, and
evaluates JavaScript in it.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    loaded: bool = False


class Chromium:
    """Headless Chromium driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="bench-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Move the child's ends to fds >= 10 so bash's "3<&X 4>&Y" cannot clobber one with the other.
        to_chrome_r, from_chrome_w = (self._high(fd) for fd in (to_chrome_r, from_chrome_w))
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                 "--disable-dev-shm-usage", f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
                 "about:blank"]  # fmt: skip
        # Chromium reads commands on fd 3 and writes replies on fd 4: map our pipe ends there (bash, as
        # dash accepts only one-digit fds in redirections).
        script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self._process = subprocess.Popen(
            ["bash", "-c", script, executable, *flags],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    @staticmethod
    def _high(fd: int) -> int:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                self._messages.put(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply (events seen meanwhile are kept)."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_chrome, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def load(self, url: str) -> tuple[PageLoad, str]:
        """Open `url` in a new tab, wait for its load event, and return what happened and the session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session=session)
        page = PageLoad()
        deadline = time.monotonic() + self.timeout
        pending = list(self._events)
        while not page.loaded and time.monotonic() < deadline:
            while pending:
                self._record(pending.pop(0), page)
            if page.loaded:
                break
            try:
                pending.append(self._messages.get(timeout=0.5))
            except queue.Empty:
                continue
        # Drain what arrived together with the load event (late console errors, failures).
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                self._record(self._messages.get(timeout=0.2), page)
            except queue.Empty:
                break
        return page, session

    @staticmethod
    def _record(event: dict[str, Any], page: PageLoad) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Page.loadEventFired":
            page.loaded = True
        elif method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"][:80])
        elif method == "Network.loadingFailed":
            page.failed_requests.append(f"{params.get('errorText')} {params.get('blockedReason', '')}".strip())
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            page.console_errors.append(json.dumps(params.get("args"))[:200])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            page.console_errors.append(params["entry"].get("text", "")[:200])
        elif method == "Runtime.exceptionThrown":
            page.exceptions.append(json.dumps(params.get("exceptionDetails"))[:200])

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=session)  # fmt: skip
        return result["result"].get("value")

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._profile.cleanup()


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
