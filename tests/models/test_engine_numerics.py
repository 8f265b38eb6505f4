"""Run on the reference engine: the three attention variants compute the same noise prediction,
chunked UNets compute what the whole UNet computes, quantized variants have a measurable PSNR."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.models import quality, zoo


@pytest.fixture(scope="module")
def outputs(tiny_models):
    return {}


def _noise(outputs, variant_id):
    if variant_id not in outputs:
        outputs[variant_id] = quality.run_unet(zoo.resolve(variant_id, build_tiny=False))
    return outputs[variant_id]


def test_attention_variants_agree_in_fp32(outputs):
    reference = _noise(outputs, "tiny-original-fp32")
    scale = np.abs(reference).max()
    assert reference.shape == (2, 4, 64, 64) and scale > 0.1 and np.isfinite(reference).all()
    for variant in ("tiny-split-einsum-fp32", "tiny-split-einsum-v2-fp32"):
        difference = np.abs(_noise(outputs, variant) - reference).max()
        assert difference / scale < 1e-4, (variant, difference, scale)


def test_chunked_unet_matches_whole_unet(outputs):
    whole = _noise(outputs, "tiny-split-einsum-fp16")
    chunked = _noise(outputs, "tiny-split-einsum-fp16-chunked")
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_chunk_interfaces_match_by_name(model_set):
    from bench.models.metadata import read_model_info

    ms = model_set("tiny-split-einsum-mbp-chunked")
    first, second = read_model_info(ms.files["unet_chunk1"]), read_model_info(ms.files["unet_chunk2"])
    assert set(first.inputs) == {"sample", "timestep", "encoder_hidden_states", "time_ids", "text_embeds"}
    assert set(second.inputs) <= set(first.outputs) | set(first.inputs)
    assert set(second.outputs) == {"noise_pred"} and set(first.outputs) & set(second.inputs)


def test_psnr_definition():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(1000)
    assert quality.psnr(reference, reference) > 150
    noisy = reference + 0.01 * rng.standard_normal(1000)
    expected = 20 * np.log10(np.abs(reference).max() / np.sqrt(np.mean((noisy - reference) ** 2)))
    assert quality.psnr(noisy, reference) == pytest.approx(expected, abs=1e-3)
    with pytest.raises(ValueError):
        quality.psnr(reference, reference[:10])


@pytest.mark.slow
def test_quantized_psnr_ordering_and_cache(tiny_models, monkeypatch):
    values = {}
    for variant in ("tiny-split-einsum-int8", "tiny-split-einsum-pal6", "tiny-split-einsum-pal4", "tiny-split-einsum-mbp"):
        values[variant] = quality.variant_psnr(variant)
    # more bits, closer to the fp16 model the variant was compressed from
    assert values["tiny-split-einsum-int8"] > values["tiny-split-einsum-pal6"] > values["tiny-split-einsum-pal4"]
    assert 10 < values["tiny-split-einsum-pal4"] < values["tiny-split-einsum-mbp"] < values["tiny-split-einsum-pal6"]
    cache = json.loads((tiny_models["tiny-split-einsum-pal6"] / quality.CACHE_FILE).read_text())
    assert cache["tiny-split-einsum-fp16|seed=0|engine=reference-fp32"]["psnr"] == values["tiny-split-einsum-pal6"]

    def no_engine(*args, **kwargs):
        raise AssertionError("recomputed instead of using the cache")

    monkeypatch.setattr(quality, "run_unet", no_engine)
    assert quality.variant_psnr("tiny-split-einsum-pal6") == values["tiny-split-einsum-pal6"]
    assert quality.variant_psnr("tiny-original-fp32") is None
