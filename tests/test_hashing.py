"""Model file hashes: correct, and cached by (path, size, mtime) so big weights hash once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.hashing import HashCache, model_file_hashes, tree_hash


def test_file_and_tree_hashes(tmp_path: Path) -> None:
    model = tmp_path / "Unet.mlmodelc"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "weight.bin").write_bytes(b"w" * 1000)
    (model / "model.mil").write_text("program(1.0)")
    vocab = tmp_path / "vocab.json"
    vocab.write_text("{}")
    cache = HashCache(tmp_path / "cache.json")
    hashes = model_file_hashes({"unet": model, "vocab": vocab}, cache)
    assert hashes["vocab"] == hashlib.sha256(b"{}").hexdigest()
    assert len(hashes["unet"]) == 64
    assert cache.hashed_files == 3

    again = HashCache(tmp_path / "cache.json")  # reloaded from disk
    assert model_file_hashes({"unet": model, "vocab": vocab}, again) == hashes
    assert again.hashed_files == 0

    weight = model / "weights" / "weight.bin"
    weight.write_bytes(b"x" * 1000)
    os.utime(weight, ns=(1, 1))
    changed = HashCache(tmp_path / "cache.json")
    assert tree_hash(model, changed) != hashes["unet"]
    assert changed.hashed_files == 1
