"""The builder: deterministic bytes from a seed, integrity markers, atomic folders, skipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import ModelNotFoundError
from bench.models.tiny.build import (
    UNIT_MARKER,
    SetBuilder,
    build_variants,
    parse_id,
    unit_is_valid,
)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    a, _ = SetBuilder("tiny", 0, tmp_path / "a").ensure_unit("text_encoder_2-fp16")
    b, _ = SetBuilder("tiny", 0, tmp_path / "b").ensure_unit("text_encoder_2-fp16")
    c, _ = SetBuilder("tiny", 7, tmp_path / "c").ensure_unit("text_encoder_2-fp16")
    files_a, files_b, files_c = _bytes(a), _bytes(b), _bytes(c)
    assert files_a == files_b
    weights = [k for k in files_a if k.endswith("weight.bin")]
    assert weights and files_a[weights[0]] != files_c[weights[0]]
    assert c.parts[-3] == "tiny-seed7"


def test_marker_lists_hashes_and_detects_damage(tmp_path):
    folder, built = SetBuilder("tiny", 0, tmp_path).ensure_unit("tokenizer")
    assert built and unit_is_valid(folder, deep=True)
    marker = json.loads((folder / UNIT_MARKER).read_text())
    assert set(marker["files"]) == {"vocab.json", "merges.txt"}
    again, built_again = SetBuilder("tiny", 0, tmp_path).ensure_unit("tokenizer")
    assert again == folder and not built_again  # valid: skipped
    vocab = folder / "vocab.json"
    vocab.write_bytes(vocab.read_bytes().replace(b'"a"', b'"A"', 1))  # same size, other content
    assert unit_is_valid(folder) and not unit_is_valid(folder, deep=True)
    _, rebuilt = SetBuilder("tiny", 0, tmp_path).ensure_unit("tokenizer", deep=True)
    assert rebuilt and unit_is_valid(folder, deep=True)


def test_failed_build_leaves_no_folder(tmp_path, monkeypatch):
    builder = SetBuilder("tiny", 0, tmp_path)

    def explode(name, folder):
        (folder / "half-written.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(builder, "_make_unit", explode)
    with pytest.raises(RuntimeError):
        builder.ensure_unit("tokenizer")
    assert not builder.unit_dir("tokenizer").exists()
    assert not list(builder.unit_dir("tokenizer").parent.glob(".tmp-*"))


def test_ids_and_errors():
    gid = parse_id("tiny-split-einsum-v2-mbp-chunked")
    assert (gid.size, gid.attention, gid.quant, gid.chunked, gid.precision) == ("tiny", "SPLIT_EINSUM_V2", "mbp", True, "fp16")
    assert parse_id("tiny-split-einsum-v3-fp16") is None
    with pytest.raises(ModelNotFoundError, match="not a generated variant id"):
        build_variants(["sdxl-base-macos"])
    with pytest.raises(ModelNotFoundError, match="unknown generated size"):
        SetBuilder("huge")


def test_variant_units_share_non_unet_parts():
    builder = SetBuilder("tiny")
    a = builder.part_units(parse_id("tiny-original-int8"))
    b = builder.part_units(parse_id("tiny-split-einsum-pal4"))
    assert a["text_encoder"] == b["text_encoder"] and a["vae_decoder"] == b["vae_decoder"]
    assert a["unet"][0] != b["unet"][0] and a["refiner"] != b["refiner"]
    fp32 = builder.part_units(parse_id("tiny-original-fp32"))
    assert fp32["text_encoder"][0] == "text_encoder-fp32" and fp32["vae_encoder"] == a["vae_encoder"]
