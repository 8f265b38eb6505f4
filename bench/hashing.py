"""SHA-256 of model files, cached by (path, size, mtime) so GB-sized SDXL weights hash once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_CHUNK = 8 << 20


def default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdxl-coreml-bench")) / "file-hashes.json"


class HashCache:
    """A JSON file mapping absolute path -> [size, mtime_ns, sha256]."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        try:
            self._entries: dict[str, list] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._entries = {}
        self._dirty = False
        self.hashed_files = 0  # files actually read (cache misses), for tests and logs

    def file_hash(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        entry = self._entries.get(key)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        self.hashed_files += 1
        self._entries[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
        self._dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._entries), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be written only costs time next run


def tree_hash(path: Path, cache: HashCache) -> str:
    """Hash of a file, or of a folder as the sorted (relative path, file hash) list."""
    path = Path(path)
    if path.is_file():
        return cache.file_hash(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{cache.file_hash(file)}\n".encode())
    return digest.hexdigest()


def model_file_hashes(files: Mapping[str, Path], cache: HashCache | None = None) -> dict[str, str]:
    """File key -> hash of that part's file or folder."""
    cache = cache or HashCache()
    try:
        return {part: tree_hash(Path(p), cache) for part, p in sorted(files.items()) if Path(p).exists()}
    finally:
        cache.save()


def hash_many(paths: Iterable[Path], cache: HashCache | None = None) -> dict[str, str]:
    cache = cache or HashCache()
    try:
        return {str(p): tree_hash(Path(p), cache) for p in paths}
    finally:
        cache.save()
