"""`bench list`: suites and their expanded cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(REPO)


def test_brief_lists_every_shipped_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--brief"]) == 0
    out = capsys.readouterr().out
    for name in ("smoke", "ios17", "macos", "refiner", "img2img", "quantization", "attention", "nightly"):
        assert name in out


def test_list_shows_expanded_cases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "tiny-split-einsum-mbp" in out and "tiny-original-fp16" in out and "tiny-split-einsum-v2-fp16" in out


def test_list_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "smoke", "-k", "pal4"]) == 0
    out = capsys.readouterr().out
    assert "tiny-split-einsum-pal4" in out and "tiny-original-fp16" not in out


def test_list_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: unknown suite 'nope'") and "\n" not in err
