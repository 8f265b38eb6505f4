"""Fetching published sets: only the needed files, into Apple's layout; clear failures offline."""

from __future__ import annotations

import fnmatch
import time

import pytest

from bench.models import fetch as fetch_module
from bench.models import zoo
from bench.models.fetch import FetchError, allow_patterns, fetch
from bench.models.paths import MODELS_DIR_ENV

# A fake Hub repo tree: every file of Apple's xl-base repo the zoo could ask for, and some it must not.
XL_BASE_FILES = [
    "README.md",
    "coreml-stable-diffusion-xl-base_original_compiled.zip",
    "compiled/vocab.json",
    "compiled/merges.txt",
    *[f"compiled/{m}.mlmodelc/{f}" for m in ("TextEncoder", "TextEncoder2", "Unet", "VAEDecoder", "VAEEncoder")
      for f in ("model.mil", "coremldata.bin", "metadata.json", "weights/weight.bin", "analytics/coremldata.bin")],
    *[f"packages/Stable_Diffusion_version_stabilityai_stable-diffusion-xl-base-1.0_{p}.mlpackage/{f}"
      for p in ("text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder")
      for f in ("Manifest.json", "Data/com.apple.CoreML/model.mlmodel")],
]


@pytest.fixture()
def fake_hub(monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    calls = []

    def snapshot_download(*, repo_id, revision, allow_patterns, local_dir, **kwargs):
        calls.append({"repo_id": repo_id, "patterns": list(allow_patterns), "local_dir": local_dir})
        from pathlib import Path

        for name in XL_BASE_FILES:
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                path = Path(local_dir) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if name.endswith("metadata.json"):
                    path.write_text('[{"inputSchema": [{"name": "sample", "shape": "[2, 4, 128, 128]"}], "storagePrecision": "Float16"}]')
                elif name.endswith("Manifest.json"):
                    path.write_text('{"itemInfoEntries": {}}')
                elif name.endswith("vocab.json"):
                    path.write_text('{"a": 0}')
                else:
                    path.write_text("x")
        return local_dir

    monkeypatch.setattr(fetch_module, "_snapshot_download", snapshot_download)
    return calls


def test_fetch_downloads_only_needed_files(fake_hub):
    folder = fetch("sdxl-base-macos", progress=False)
    assert [c["repo_id"] for c in fake_hub] == ["apple/coreml-stable-diffusion-xl-base"]
    downloaded = {p.relative_to(folder.parent).as_posix() for p in folder.parent.rglob("*") if p.is_file()}
    assert "README.md" not in downloaded and not any(d.endswith(".zip") for d in downloaded)
    assert not any(d.startswith("packages/") for d in downloaded)
    assert "compiled/Unet.mlmodelc/weights/weight.bin" in downloaded
    ms = zoo.resolve("sdxl-base-macos")
    assert zoo.is_present("sdxl-base-macos")
    assert ms.files["unet"] == folder / "Unet.mlmodelc" and ms.files["vocab"] == folder / "vocab.json"
    assert (ms.attention, ms.quantization, ms.resolution) == ("ORIGINAL", "float16", 1024)


def test_packages_variant_takes_tokenizer_from_compiled(fake_hub):
    fetch("sdxl-base-macos-packages", progress=False)
    patterns = fake_hub[0]["patterns"]
    assert "compiled/vocab.json" in patterns and "compiled/merges.txt" in patterns
    assert not any(p.startswith("compiled/Unet") for p in patterns)
    ms = zoo.resolve("sdxl-base-macos-packages")
    assert ms.files["unet"].name == "Stable_Diffusion_version_stabilityai_stable-diffusion-xl-base-1.0_unet.mlpackage"


def test_patterns_of_each_published_set():
    ios = zoo.get_variant("sdxl-base-ios17")
    patterns = allow_patterns(ios, "apple/coreml-stable-diffusion-xl-base-ios")
    assert "coreml-stable-diffusion-xl-base-ios_split_einsum_compiled/UnetChunk1.mlmodelc/*" in patterns
    assert "coreml-stable-diffusion-xl-base-ios_split_einsum_compiled/vocab.json" in patterns
    mbp = zoo.get_variant("sdxl-mbp-3.41")
    assert allow_patterns(mbp, "apple/coreml-stable-diffusion-mixed-bit-palettization") == [
        "unet-mbp-sdxl-1-base/recipe_3_41_bit_mixedpalette/Unet.mlmodelc/*"
    ]
    assert "compiled/TextEncoder.mlmodelc/*" in allow_patterns(mbp, "apple/coreml-stable-diffusion-xl-base")


def test_repo_lacking_files_is_reported(fake_hub, monkeypatch):
    monkeypatch.setattr(fetch_module, "_snapshot_download", lambda **kwargs: kwargs["local_dir"])
    with pytest.raises(FetchError, match="lacks text_encoder"):
        fetch("sdxl-base-macos", progress=False)


def test_no_network_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    """The real huggingface_hub client against an endpoint nothing listens on (no download can start)."""
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)  # the endpoint is read when the module loads
    try:
        start = time.monotonic()
        with pytest.raises(FetchError) as error:
            fetch("sdxl-base-ios17", progress=False)
        assert time.monotonic() - start < 30
        message = str(error.value)
        assert "sdxl-base-ios17" in message and "apple/coreml-stable-diffusion-xl-base-ios" in message
        assert "no connection" in message
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)


def test_offline_mode_and_generated_ids(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE"):
        fetch("sdxl-base-macos")
    with pytest.raises(FetchError, match="build-tiny tiny-original-fp16"):
        fetch("tiny-original-fp16")
