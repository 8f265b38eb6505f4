"""End to end on the generated tiny SDXL models with the reference engine (slow: ~1-2 min on 2 cores).

The tiny set (`tiny-split-einsum-fp16`, 512x512, a 64x64 latent) is built on first use into the
models folder (`BENCH_MODELS_DIR`, else the user cache). Each generation runs one or two denoising
steps: what is checked is the wiring of real Core ML model files through the pipeline (shapes,
dtypes, chunk interfaces, refiner conditioning, the VAE encoder), determinism and guidance.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure.recorder import TimingRecorder
from bench.pipeline import GenerationRequest, SDXLPipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

BASE_ID = "tiny-split-einsum-fp16"
PROMPT = "a photo of an astronaut riding a horse on mars"


@pytest.fixture(scope="module")
def engine():
    from bench.engines import get_engine

    return get_engine("reference")


@pytest.fixture(scope="module")
def base_set():
    from bench.models import zoo

    return zoo.resolve(BASE_ID, build_tiny=True)


@pytest.fixture(scope="module")
def base(base_set, engine):
    recorder = TimingRecorder()
    pipe = SDXLPipeline(base_set, engine, "REFERENCE", recorder=recorder)
    request = GenerationRequest(prompt=PROMPT, steps=1, seed=11, guidance_scale=5.0)
    pipe.load(pipe.parts_for(request))
    recorder.records.clear()
    result = pipe.generate(request)
    yield pipe, request, result, recorder
    pipe.close()


def test_text_to_image_shapes_spans_and_finite_output(base, base_set):
    _, _, result, recorder = base
    side = base_set.resolution
    assert result.image.shape == (side, side, 3) and result.image.dtype == np.uint8
    assert result.latents.shape == (1, 4, side // 8, side // 8)
    assert np.isfinite(result.latents).all() and np.isfinite(result.decoded).all()
    assert result.unet_calls == 1
    assert result.image.std() > 1.0  # not a constant image
    assert recorder.stages() == [
        "tokenize", "text_encoder", "text_encoder_2", "unet", "scheduler", "diffusion", "vae_decoder", "end_to_end",
    ]


def test_same_seed_same_image_under_reduce_memory(base, base_set, engine):
    _, request, result, _ = base
    recorder = TimingRecorder()
    pipe = SDXLPipeline(base_set, engine, "REFERENCE", recorder=recorder, reduce_memory=True)
    again = pipe.generate(request)
    np.testing.assert_array_equal(again.image, result.image)
    np.testing.assert_array_equal(again.latents, result.latents)
    stages = recorder.stages()
    assert [s for s in stages if s.startswith("load/")] == [
        "load/text_encoder", "load/text_encoder_2", "load/unet", "load/vae_decoder",
    ]
    assert pipe.loaded_parts == ()


def test_guidance_changes_the_image(base):
    pipe, _, result, _ = base
    unguided = pipe.generate(GenerationRequest(prompt=PROMPT, steps=1, seed=11, guidance_scale=1.0))
    assert not np.allclose(unguided.latents, result.latents, atol=1e-3)


def test_chunked_unet_matches_the_whole_unet(base, engine):
    from bench.models import zoo

    _, request, result, _ = base
    chunked_set = zoo.resolve(BASE_ID + "-chunked", build_tiny=True)
    assert chunked_set.chunked_unet
    pipe = SDXLPipeline(chunked_set, engine, "REFERENCE", reduce_memory=True)  # no first predictions
    assert "unet_chunk1" in pipe.parts_for(request) and "unet" not in pipe.parts_for(request)
    chunked = pipe.generate(request)
    pipe.close()
    # Chunk 1 hands its fp16 activations to chunk 2 as fp32 (Apple's chunking); the rest is the same model.
    np.testing.assert_allclose(chunked.latents, result.latents, rtol=1e-3, atol=1e-3)
    assert np.abs(chunked.image.astype(int) - result.image.astype(int)).max() <= 2


def test_refiner_finishes_the_schedule(base, base_set, engine):
    _, _, result, _ = base
    recorder = TimingRecorder()
    pipe = SDXLPipeline(base_set, engine, "REFERENCE", recorder=recorder, reduce_memory=True)
    refined = pipe.generate(
        GenerationRequest(prompt=PROMPT, steps=2, seed=11, refiner=True, high_noise_frac=0.5)
    )
    assert refined.unet_calls == 2 and refined.refiner_calls == 1 and refined.refiner_start_step == 1
    assert [(r.stage, r.step) for r in recorder.records if r.stage in ("unet", "refiner")] == [("unet", 0), ("refiner", 1)]
    assert refined.image.shape == result.image.shape and np.isfinite(refined.latents).all()
    loads = [s for s in recorder.stages() if s.startswith("load/")]
    assert loads.index("load/refiner") > loads.index("load/unet")  # swapped in at the hand-over


def test_img2img_encodes_the_init_image(base):
    pipe, _, result, _ = base
    init = 255 - result.image  # an image unlike what the prompt gives, re-noised halfway
    recorder = TimingRecorder()
    pipe.recorder = recorder
    try:
        img2img = pipe.generate(GenerationRequest(prompt=PROMPT, steps=2, seed=11, init_image=init, strength=0.5))
    finally:
        pipe.recorder = base[3]
    assert img2img.steps == 1 and img2img.unet_calls == 1
    assert img2img.image.shape == init.shape and np.isfinite(img2img.latents).all()
    stages = recorder.stages()
    assert stages.index("text_encoder_2") < stages.index("vae_encoder") < stages.index("diffusion")
    # Half the noise is left: the result stays much closer to the init image than the text-to-image one.
    distance = np.abs(img2img.image.astype(float) - init).mean()
    assert distance < np.abs(result.image.astype(float) - init).mean()
