"""`bench models list / build-tiny / fetch / quality` from the command line."""

from __future__ import annotations

import json

import pytest

from bench.cli import main


@pytest.fixture()
def models_env(monkeypatch):
    from bench.models.testing import use_tiny_models_dir
    from bench.models.tiny import ensure_built

    folder = use_tiny_models_dir()
    ensure_built(["tiny-original-fp32"])
    return folder


def test_list_json_shows_presence_and_files(models_env, capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    tiny = rows["tiny-original-fp32"]
    assert tiny["present"] and tiny["bytes"] > 0 and tiny["quantization"] == "float32" and tiny["resolution"] == 512
    assert tiny["files"]["unet"].endswith("Stable_Diffusion_version_bench_tiny-sdxl_unet.mlpackage")
    ios = rows["sdxl-base-ios17"]
    assert not ios["present"] and ios["attention"] == "SPLIT_EINSUM" and "unet_chunk1" in ios["parts"]
    assert ios["files"]["unet_chunk1"].endswith("coreml-stable-diffusion-xl-base-ios_split_einsum_compiled/UnetChunk1.mlmodelc")


def test_list_table(models_env, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-split-einsum-mbp-chunked" in out and "sdxl-base-macos-packages" in out and "mbp-4.04" in out


def test_build_tiny_skips_valid_variants(models_env, capsys):
    assert main(["models", "build-tiny", "tiny-original-fp32"]) == 0
    err = capsys.readouterr().err
    assert "already built and valid" in err and "built unet" not in err and "1 variant(s) ready" in err


def test_build_tiny_rejects_published_and_unknown_ids(models_env, capsys):
    assert main(["models", "build-tiny", "sdxl-base-macos"]) == 2
    assert "bench models fetch sdxl-base-macos" in capsys.readouterr().err
    assert main(["models", "build-tiny", "tiny-orignal-fp32"]) == 2
    assert "tiny-original-fp32" in capsys.readouterr().err


def test_fetch_without_network_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BENCH_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "fetch", "sdxl-base-ios17"]) == 2
    assert "cannot fetch sdxl-base-ios17" in capsys.readouterr().err
    assert main(["models", "fetch", "no-such-model"]) == 2
    assert "unknown model variant" in capsys.readouterr().err
