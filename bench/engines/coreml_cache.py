"""A stable cache of compiled Core ML models, keyed by the content hash of the source package.

Why stable: Core ML caches a model's device specialization (the minutes-long Neural Engine compile)
by the compiled model's location and contents. A fresh temporary `.mlmodelc` per run would miss
that cache every time; a compiled copy at a path derived from the package's bytes is reused by
later runs, so their loads can be warm. An entry is removed when loading it fails, and when the
worker that was loading it died (a `.loading-<pid>` marker outlives its process).

Layout: `<root>/<stem>-<sha256[:16]>.mlmodelc` (complete entries only: they appear by an atomic
rename), `<root>/tmp-<pid>-<uuid>.mlmodelc` (a compile in progress), `<root>/<entry>.loading-<pid>`
(a load in progress), `<root>/loads/` (compute units and OS builds each model was loaded for).
Set `BENCH_COREML_CACHE` to move the cache; delete the folder to start from nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.hashing import HashCache, tree_hash


def default_cache_root() -> Path:
    """`$BENCH_COREML_CACHE`, else the user cache folder (platformdirs) + `coreml-compiled`."""
    configured = os.environ.get("BENCH_COREML_CACHE")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdxl-coreml-bench")) / "coreml-compiled"


def package_digest(path: Path, memo: Path) -> str:
    """The package's content hash, computed as the manifest's model hash is (`bench.hashing.tree_hash`).

    File hashes are remembered in `memo` by path, size and mtime, so a multi-GB package costs a
    lookup on a cache hit, not a re-read inside the `compile/<part>` span.
    """
    cache = HashCache(memo)
    try:
        return tree_hash(Path(path), cache)
    finally:
        cache.save()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class CompileResult:
    """Where the compiled model is and whether the cache already held it."""

    path: Path
    cache_hit: bool


class CompiledModelCache:
    """Compiled `.mlmodelc` copies of packages, reused across runs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    def entry_for(self, package: Path) -> Path:
        digest = package_digest(package, self.root / "file-hashes.json")
        return self.root / f"{package.stem}-{digest[:16]}.mlmodelc"

    def sweep(self) -> list[Path]:
        """Remove what dead workers left: unfinished compiles and entries whose load never finished."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for item in self.root.iterdir():
            pid = _marker_pid(item)
            if pid is None or _pid_alive(pid):
                continue
            if item.name.startswith("tmp-"):
                shutil.rmtree(item, ignore_errors=True)
                removed.append(item)
            elif ".loading-" in item.name:
                entry = self.root / item.name.split(".loading-")[0]
                self.evict(entry)
                item.unlink(missing_ok=True)
                removed.append(entry)
        return removed

    def compile(self, package: Path, compile_into: Callable[[Path], None]) -> CompileResult:
        """The cached entry for `package`, compiling it with `compile_into(destination)` on a miss."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        entry = self.entry_for(package)
        if entry.is_dir():
            return CompileResult(entry, True)
        scratch = self.root / f"tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.mlmodelc"
        try:
            compile_into(scratch)
            try:
                os.rename(scratch, entry)  # atomic: readers see a whole entry or none
            except OSError:
                if not entry.is_dir():  # not a concurrent compile of the same bytes
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return CompileResult(entry, False)

    def owns(self, path: Path) -> bool:
        return Path(path).parent.resolve() == self.root.resolve() if self.root.exists() else False

    def begin_load(self, entry: Path) -> Path:
        """Mark `entry` as being loaded by this process (removed by `end_load`)."""
        marker = entry.with_name(f"{entry.name}.loading-{os.getpid()}")
        marker.touch()
        return marker

    def end_load(self, marker: Path) -> None:
        marker.unlink(missing_ok=True)

    def evict(self, entry: Path) -> None:
        shutil.rmtree(entry, ignore_errors=True)
        LoadLedger(entry, self.root).forget()


def _marker_pid(item: Path) -> int | None:
    """The pid in `tmp-<pid>-...` or `...loading-<pid>`, if any."""
    name = item.name
    if name.startswith("tmp-"):
        text = name[4:].split("-", 1)[0]
    elif ".loading-" in name:
        text = name.rsplit(".loading-", 1)[1]
    else:
        return None
    return int(text) if text.isdigit() else None


class LoadLedger:
    """Which compute units (on which OS build) a compiled model was already loaded for on this machine.

    Core ML does not say whether a load hit its specialization cache; what the harness knows is
    whether the same compiled bytes at the same path were loaded before for the same compute units
    on the same OS build (Core ML drops its cache on OS updates). The first such load is `cold`;
    later ones are `warm` unless Core ML evicted the entry (after long disuse), which it does not report.
    """

    def __init__(self, compiled: Path, cache_root: Path) -> None:
        key = hashlib.sha256(str(Path(compiled).resolve()).encode()).hexdigest()[:16]
        self.path = Path(cache_root) / "loads" / f"{Path(compiled).stem}-{key}.json"

    def _read(self) -> list[str]:
        try:
            return list(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return []

    def seen(self, compute_unit: str, os_build: str) -> bool:
        return f"{compute_unit}@{os_build}" in self._read()

    def record(self, compute_unit: str, os_build: str) -> None:
        entries = self._read()
        key = f"{compute_unit}@{os_build}"
        if key not in entries:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps([*entries, key]), encoding="utf-8")

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
