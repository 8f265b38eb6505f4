"""Paths named inside a model folder stay inside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.errors import ModelFormatError
from bench.safe_paths import path_inside


def test_paths_inside_are_returned(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    assert path_inside(tmp_path, "weights/weight.bin", "w") == tmp_path / "weights" / "weight.bin"
    assert path_inside(tmp_path, "./weights/./weight.bin", "w") == tmp_path / "weights" / "weight.bin"


@pytest.mark.parametrize("relative", ["../x", "weights/../../x", "/etc/passwd", "", "a\0b"])
def test_paths_out_as_written_are_refused(tmp_path: Path, relative: str) -> None:
    with pytest.raises(ModelFormatError, match=r"^w: path .* does not stay inside"):
        path_inside(tmp_path, relative, "w")


def test_symlinks_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    os.symlink(tmp_path, root / "up")
    with pytest.raises(ModelFormatError, match=r"leads out of"):
        path_inside(root, "up/secret", "w")


def test_symlinks_within_the_folder_are_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert path_inside(tmp_path, "alias/w.bin", "w") == tmp_path / "alias" / "w.bin"
