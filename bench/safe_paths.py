"""Paths read from inside a model folder must stay inside it.

A model file names other files (a `BLOBFILE` path in `model.mil`, a weight file in an `.mlpackage`
spec, the spec itself in `Manifest.json`). Those names come from the file, not from the user, so a
name such as `@model_path/../../etc/passwd` or a symlink pointing elsewhere must not make the loader
read whatever the user can read.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bench.errors import BenchError, ModelFormatError


def path_inside(root: Path, relative: str, what: str, error: type[BenchError] = ModelFormatError) -> Path:
    """`root / relative`, refused unless it stays inside `root`, both as written (no absolute path,
    no `..`) and after resolving symlinks."""
    parts = PurePosixPath(relative).parts
    if not relative or PurePosixPath(relative).is_absolute() or ".." in parts or "\0" in relative:
        raise error(f"{what}: path {relative!r} does not stay inside {root}")
    candidate = Path(root, *parts)
    try:
        real_root, real = Path(root).resolve(), candidate.resolve()
    except (OSError, RuntimeError) as problem:  # a symlink loop
        raise error(f"{what}: cannot resolve {relative!r} inside {root} ({problem})") from None
    if real != real_root and real_root not in real.parents:
        raise error(f"{what}: {relative!r} leads out of {root} (to {real})")
    return candidate
