"""The zoo: ids, resolution, local folders in Apple's layout, and clear errors for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.errors import ModelFormatError, ModelNotFoundError
from bench.models import zoo
from bench.models.paths import MODELS_DIR_ENV, models_dir
from bench.models.tiny import DEFAULT_TINY_IDS


def test_models_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "m"))
    assert models_dir() == tmp_path / "m"
    monkeypatch.delenv(MODELS_DIR_ENV)
    assert models_dir().name == "models" and "sdxl-coreml-bench" in str(models_dir())


def test_known_ids():
    ids = {v.id for v in zoo.list_variants()}
    required = {
        "tiny-split-einsum-mbp-chunked", "tiny-split-einsum-fp16-chunked", "small-original-fp32", "small-split-einsum-fp16",
        "sdxl-base-ios17", "sdxl-base-macos", "sdxl-base-macos-packages", "sdxl-base-refiner-macos",
        "sdxl-mbp-3.41", "sdxl-mbp-4.50", "sdxl-mbp-6.55", "sdxl-mbp-recipes",
    }
    assert required <= ids and set(DEFAULT_TINY_IDS) <= ids
    assert all(f"tiny-{a}-{q}" in ids for a in ("original", "split-einsum", "split-einsum-v2")
               for q in ("fp32", "fp16", "int8", "pal6", "pal4", "mbp"))
    ios = zoo.get_variant("sdxl-base-ios17")
    assert (ios.attention, ios.quantization, ios.resolution, ios.chunked) == ("SPLIT_EINSUM", "mbp-4.04", 768, True)
    assert ios.hub[0].folder == "coreml-stable-diffusion-xl-base-ios_split_einsum_compiled"
    assert zoo.get_variant("small-split-einsum-v2-int8-chunked").size == "small"  # any grammar-valid id


def test_unknown_id_names_close_matches():
    with pytest.raises(ModelNotFoundError) as error:
        zoo.get_variant("tiny-split-einsum-fp61")
    assert "'tiny-split-einsum-fp61'" in str(error.value) and "tiny-split-einsum-fp16" in str(error.value)
    with pytest.raises(ModelNotFoundError, match="unknown model variant 'sdxl-base-ios18'.*sdxl-base-ios17"):
        zoo.resolve("sdxl-base-ios18")


def test_missing_published_variant_names_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert not zoo.is_present("sdxl-base-macos")
    with pytest.raises(ModelNotFoundError, match=r"sdxl-base-macos .*`bench models fetch sdxl-base-macos`"):
        zoo.resolve("sdxl-base-macos")
    with pytest.raises(ModelNotFoundError, match="recipe file, not a model set"):
        zoo.resolve("sdxl-mbp-recipes")


def test_quality_baselines():
    assert zoo.quality_baseline("tiny-original-fp32") is None
    assert zoo.quality_baseline("tiny-original-fp16") == "tiny-original-fp32"
    assert zoo.quality_baseline("tiny-split-einsum-v2-pal4") == "tiny-split-einsum-v2-fp16"
    assert zoo.quality_baseline("tiny-split-einsum-mbp-chunked") == "tiny-split-einsum-fp16"
    assert zoo.quality_baseline("sdxl-mbp-4.50") == "sdxl-base-macos"
    assert zoo.quality_baseline("sdxl-base-ios17") is None


def test_generated_variant_resolves_with_labels(model_set):
    ms = model_set("tiny-split-einsum-mbp-chunked")
    assert ms.chunked_unet and ms.attention == "SPLIT_EINSUM" and ms.quantization.startswith("mbp-")
    assert ms.resolution == 512 and ms.latent_size == 64
    assert {"text_encoder", "text_encoder_2", "unet_chunk1", "unet_chunk2", "refiner", "vae_decoder", "vae_encoder",
            "vocab", "merges"} == set(ms.files)
    assert all(path.exists() for path in ms.files.values())
    assert zoo.is_present("tiny-split-einsum-mbp-chunked")


def _copy_set(ms, dest: Path, *, compiled_names: bool = False) -> Path:
    dest.mkdir(parents=True)
    for stage, path in ms.files.items():
        real = path.resolve()
        if stage in ("vocab", "merges"):
            shutil.copy2(real, dest / path.name)
        else:
            name = path.name
            if compiled_names:
                from bench.models.layout import COMPILED_NAMES

                name = f"{COMPILED_NAMES[stage]}.mlpackage"
            shutil.copytree(real, dest / name)
    return dest


def test_local_folder_in_apple_layout(model_set, tmp_path):
    ms = model_set("tiny-split-einsum-pal6")
    folder = _copy_set(ms, tmp_path / "my-set" / "packages")
    local = zoo.resolve(str(tmp_path / "my-set"))
    assert local.files["unet"].name == ms.files["unet"].name
    assert (local.attention, local.quantization, local.resolution) == ("SPLIT_EINSUM", "palettized-6bit", 512)
    assert zoo.resolve(folder).files.keys() == local.files.keys()


def test_local_chunked_folder_without_metadata_infers_labels(model_set, tmp_path):
    ms = model_set("tiny-split-einsum-mbp-chunked")
    folder = _copy_set(ms, tmp_path / "coreml-sdxl_split_einsum_chunked")
    from bench.models.metadata import read_model_info

    local = zoo.resolve(folder)
    assert local.chunked_unet and local.attention == "SPLIT_EINSUM" and local.quantization == ms.quantization
    assert read_model_info(local.files["unet_chunk1"]).inputs["sample"] == (2, 4, 64, 64)


def test_incomplete_folder_names_what_is_missing(model_set, tmp_path):
    folder = _copy_set(model_set("tiny-original-fp32"), tmp_path / "set")
    for path in folder.glob("*text_encoder_2.mlpackage"):
        shutil.rmtree(path)
    (folder / "merges.txt").unlink()
    with pytest.raises(ModelFormatError) as error:
        zoo.resolve(folder)
    message = str(error.value)
    assert str(folder) in message and "text_encoder_2" in message and "merges.txt" in message


def test_single_chunk_is_incomplete(model_set, tmp_path):
    folder = _copy_set(model_set("tiny-split-einsum-fp16-chunked"), tmp_path / "set")
    for path in folder.glob("*unet_chunk2.mlpackage"):
        shutil.rmtree(path)
    with pytest.raises(ModelFormatError, match="unet_chunk2"):
        zoo.resolve(folder)


@pytest.mark.parametrize("damage", ["manifest", "spec", "weights_listed"])
def test_corrupt_package_names_the_file(model_set, tmp_path, damage):
    folder = _copy_set(model_set("tiny-original-fp32"), tmp_path / "set")
    unet = next(folder.glob("*_unet.mlpackage"))
    if damage == "manifest":
        (unet / "Manifest.json").write_text("{garbage")
        fragment = "Manifest.json is corrupt"
    elif damage == "spec":
        (unet / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"")
        fragment = "model.mlmodel"
    else:
        shutil.rmtree(unet / "Data" / "com.apple.CoreML" / "weights")
        fragment = "weights"
    with pytest.raises(ModelFormatError) as error:
        zoo.resolve(folder)
    assert str(unet) in str(error.value) and fragment in str(error.value)


def test_truncated_spec_is_a_format_error(model_set, tmp_path):
    folder = _copy_set(model_set("tiny-original-fp32"), tmp_path / "set")
    spec = next(folder.glob("*_unet.mlpackage")) / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec.write_bytes(spec.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="_unet.mlpackage"):
        zoo.resolve(folder)


def test_missing_folder_and_compiled_layout(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        zoo.resolve(str(tmp_path / "nowhere"))
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    (compiled / "TextEncoder.mlmodelc").mkdir()
    with pytest.raises(ModelFormatError) as error:
        zoo.resolve(tmp_path)
    assert "TextEncoder2.mlmodelc" in str(error.value) and "vocab.json" in str(error.value)


def test_interrupted_build_is_detected_and_rebuilt(tiny_models, tmp_path, monkeypatch):
    """A variant folder without its marker (written last) is not present; resolve rebuilds it."""
    folder = tiny_models["tiny-split-einsum-fp16"]
    marker = folder / "bench-model.json"
    saved = marker.read_text()
    marker.unlink()
    try:
        assert not zoo.is_present("tiny-split-einsum-fp16")
        with pytest.raises(ModelNotFoundError, match="bench models build-tiny tiny-split-einsum-fp16"):
            zoo.resolve("tiny-split-einsum-fp16", build_tiny=False)
        assert zoo.resolve("tiny-split-einsum-fp16").quantization == "float16"
        assert json.loads(marker.read_text()) == json.loads(saved)
    finally:
        if not marker.exists():
            marker.write_text(saved)
