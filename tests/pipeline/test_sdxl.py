"""The SDXL pipeline against fake numpy models: spans, batching, chunks, refiner, img2img, memory mode."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bench.errors import PipelineError
from bench.measure.recorder import TimingRecorder
from bench.pipeline import GenerationRequest, PromptTruncatedWarning, SDXLPipeline
from bench.pipeline.schedulers import make_scheduler
from tests.pipeline.fakes import FakeEngine, make_model_set
from tests.pipeline.fakes import _run as run_fake

PROMPT = "a photo of an astronaut riding a horse on mars"
STEPS = 4


def _pipe(tmp_path, name="set", engine=None, recorder=None, reduce_memory=False, compute_unit="FAKE", **set_options):
    model_set = make_model_set(tmp_path / name, **set_options)
    engine = engine or FakeEngine()
    return SDXLPipeline(model_set, engine, compute_unit, recorder=recorder, reduce_memory=reduce_memory), engine


def _request(**overrides):
    return GenerationRequest(**{"prompt": PROMPT, "steps": STEPS, "seed": 7, **overrides})


def test_text_to_image_shapes_and_span_order(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(tmp_path, recorder=recorder)
    request = _request()
    pipe.load(pipe.parts_for(request))
    load_spans = recorder.stages()
    assert load_spans == [
        stage for part in ("text_encoder", "text_encoder_2", "unet", "vae_decoder")
        for stage in (f"load/{part}", f"first_predict/{part}")
    ]
    recorder.records.clear()
    result = pipe.generate(request)
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
    assert result.latents.shape == (1, 4, 8, 8) and result.latents.dtype == np.float32
    assert result.unet_calls == STEPS and result.steps == STEPS and result.refiner_calls == 0
    expected = ["tokenize", "text_encoder", "text_encoder_2"]
    expected += ["unet", "scheduler"] * STEPS + ["diffusion", "vae_decoder", "end_to_end"]
    assert recorder.stages() == expected
    unet_steps = [r.step for r in recorder.records if r.stage == "unet"]
    assert unet_steps == list(range(STEPS)) == [r.step for r in recorder.records if r.stage == "scheduler"]
    assert all(r.step is None for r in recorder.records if r.stage not in ("unet", "scheduler"))
    # One batch-2 UNet call per step, and no model was loaded during generation.
    assert engine.events("predict").count(("predict", "unet")) == 1 + STEPS  # first prediction + steps
    assert len(engine.events("load")) == 4


def test_separate_compile_spans_come_before_load(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(tmp_path, engine=FakeEngine(separate_compile=True), recorder=recorder)
    pipe.load(["unet"])
    assert recorder.stages() == ["compile/unet", "load/unet", "first_predict/unet"]
    assert engine.log[:2] == [("compile", "unet"), ("load", "unet")]


def test_generate_loads_missing_parts_outside_end_to_end(tmp_path):
    recorder = TimingRecorder()
    pipe, _ = _pipe(tmp_path, recorder=recorder)
    pipe.generate(_request())
    stages = recorder.stages()
    first_run = stages.index("tokenize")
    assert all(s.startswith(("load/", "first_predict/")) for s in stages[:first_run])
    assert not any(s.startswith("load/") for s in stages[first_run:])


def test_same_seed_same_image_and_different_seed_differs(tmp_path):
    pipe, _ = _pipe(tmp_path)
    first = pipe.generate(_request())
    again = pipe.generate(_request())
    other = pipe.generate(_request(seed=8))
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.latents, again.latents)
    assert not np.array_equal(first.latents, other.latents)


def test_guidance_changes_the_result_and_uses_the_negative_prompt(tmp_path):
    pipe, engine = _pipe(tmp_path)
    guided = pipe.generate(_request(guidance_scale=5.0))
    unguided = pipe.generate(_request(guidance_scale=1.0))
    # Without guidance the batch-2 UNet sees the positive prompt twice (as Swift does).
    last_call = engine.models["unet"].calls[-1]
    np.testing.assert_array_equal(last_call["encoder_hidden_states"][0], last_call["encoder_hidden_states"][1])
    negative = pipe.generate(_request(guidance_scale=5.0, negative_prompt="blurry, low quality"))
    assert not np.allclose(guided.latents, unguided.latents)
    assert not np.allclose(guided.latents, negative.latents)
    assert unguided.unet_calls == STEPS


def test_guidance_rows_are_negative_then_positive(tmp_path):
    pipe, engine = _pipe(tmp_path)
    pipe.generate(_request(negative_prompt="blurry"))
    te2 = engine.models["text_encoder_2"].calls
    unet_call = engine.models["unet"].calls[-1]
    # Rows differ (negative vs positive) and the pooled text_embeds follow the same order.
    assert not np.array_equal(unet_call["encoder_hidden_states"][0], unet_call["encoder_hidden_states"][1])
    assert len(te2) == 1 + 2  # first prediction, then negative and positive
    negative_ids, positive_ids = te2[1]["input_ids"], te2[2]["input_ids"]
    assert not np.array_equal(negative_ids, positive_ids)
    negative_pooled = run_fake(engine.models["text_encoder_2"].desc, {"input_ids": negative_ids})["pooled_outputs"]
    np.testing.assert_allclose(unet_call["text_embeds"][0], negative_pooled[0].astype(np.float16))


def test_batch_one_unet_is_called_twice_per_step_with_the_same_result(tmp_path):
    batched, _ = _pipe(tmp_path, name="b2")
    single, single_engine = _pipe(tmp_path, name="b1", batch=1)
    a = batched.generate(_request())
    b = single.generate(_request())
    assert a.unet_calls == STEPS and b.unet_calls == 2 * STEPS
    assert single_engine.models["unet"].calls[-1]["sample"].shape[0] == 1
    np.testing.assert_array_equal(a.latents, b.latents)
    unguided = single.generate(_request(guidance_scale=1.0))
    assert unguided.unet_calls == STEPS


def test_chunked_unet_runs_chunk1_then_chunk2_and_matches_the_whole_unet(tmp_path):
    whole, _ = _pipe(tmp_path, name="whole")
    chunked, engine = _pipe(tmp_path, name="chunked", chunked=True)
    request = _request()
    assert chunked.parts_for(request) == ("text_encoder", "text_encoder_2", "unet_chunk1", "unet_chunk2", "vae_decoder")
    a = whole.generate(request)
    chunked.load(chunked.parts_for(request))
    engine.log.clear()
    b = chunked.generate(request)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_allclose(a.latents, b.latents, rtol=1e-6)
    unet_predicts = [p for kind, p in engine.log if kind == "predict" and p.startswith("unet")]
    assert unet_predicts == ["unet_chunk1", "unet_chunk2"] * STEPS
    assert b.unet_calls == STEPS


def test_reduce_memory_loads_each_part_before_its_stage_and_releases_it(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(tmp_path, name="rm", recorder=recorder, reduce_memory=True)
    pipe.load()
    assert engine.log == [] and recorder.records == []
    result = pipe.generate(_request())
    order = [(kind, part) for kind, part in engine.log if kind in ("load", "close")]
    assert order == [
        ("load", "text_encoder"), ("close", "text_encoder"),
        ("load", "text_encoder_2"), ("close", "text_encoder_2"),
        ("load", "unet"), ("close", "unet"),
        ("load", "vae_decoder"), ("close", "vae_decoder"),
    ]
    assert pipe.loaded_parts == ()
    stages = recorder.stages()
    assert stages.index("load/unet") < stages.index("diffusion")
    assert "first_predict/unet" not in stages and stages[-1] == "end_to_end"
    assert stages.index("load/text_encoder") > stages.index("tokenize")
    normal, _ = _pipe(tmp_path, name="normal")
    np.testing.assert_array_equal(result.image, normal.generate(_request()).image)


def test_refiner_takes_over_by_high_noise_frac(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(tmp_path, name="ref", refiner=True, recorder=recorder)
    request = _request(steps=10, refiner=True, high_noise_frac=0.8, aesthetic_score=7.0, negative_aesthetic_score=2.0)
    assert pipe.parts_for(request)[-2:] == ("refiner", "vae_decoder")
    result = pipe.generate(request)
    scheduler = make_scheduler("euler")
    scheduler.set_timesteps(10)
    cutoff = 1000 - 0.8 * 1000
    switch = int(np.flatnonzero(scheduler.timesteps < cutoff)[0])
    assert result.refiner_start_step == switch == 8
    assert result.unet_calls == 10 and result.refiner_calls == 10 - switch
    assert [r.step for r in recorder.records if r.stage == "unet"] == list(range(switch))
    assert [r.step for r in recorder.records if r.stage == "refiner"] == list(range(switch, 10))
    refiner_call = engine.models["refiner"].calls[-1]
    assert refiner_call["encoder_hidden_states"].shape == (2, 12, 1, 77)  # text_encoder_2 alone
    np.testing.assert_array_equal(refiner_call["time_ids"], np.array([[64, 64, 0, 0, 2.0], [64, 64, 0, 0, 7.0]], np.float16))
    base_call = engine.models["unet"].calls[-1]
    np.testing.assert_array_equal(base_call["time_ids"], np.array([[64, 64, 0, 0, 64, 64]] * 2, np.float16))
    plain = pipe.generate(_request(steps=10))
    assert not np.allclose(plain.latents, result.latents)


def test_chunked_refiner_under_reduce_memory_swaps_models_mid_loop(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(
        tmp_path, name="refrm", refiner=True, refiner_chunked=True, chunked=True, recorder=recorder, reduce_memory=True
    )
    request = _request(steps=10, refiner=True)
    result = pipe.generate(request)
    order = [(kind, part) for kind, part in engine.log if kind in ("load", "close") and part.startswith(("unet", "refiner"))]
    assert order == [
        ("load", "unet_chunk1"), ("load", "unet_chunk2"), ("close", "unet_chunk1"), ("close", "unet_chunk2"),
        ("load", "refiner_chunk1"), ("load", "refiner_chunk2"), ("close", "refiner_chunk1"), ("close", "refiner_chunk2"),
    ]
    assert result.refiner_calls == 2
    normal, _ = _pipe(tmp_path, name="refnormal", refiner=True, refiner_chunked=True, chunked=True)
    np.testing.assert_array_equal(result.image, normal.generate(request).image)


def test_img2img_encodes_the_image_and_runs_the_tail_of_the_schedule(tmp_path):
    recorder = TimingRecorder()
    pipe, engine = _pipe(tmp_path, name="i2i", vae_encoder=True, recorder=recorder)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    request = _request(steps=10, init_image=image, strength=0.5)
    assert "vae_encoder" in pipe.parts_for(request)
    result = pipe.generate(request)
    assert result.steps == 5
    full = make_scheduler("euler")
    full.set_timesteps(10)
    np.testing.assert_array_equal(result.timesteps, full.timesteps[5:])
    stages = recorder.stages()
    assert stages.index("text_encoder_2") < stages.index("vae_encoder") < stages.index("diffusion")
    assert engine.models["vae_encoder"].calls[-1]["x"].shape == (1, 3, 64, 64)
    other = pipe.generate(_request(steps=10, init_image=255 - image, strength=0.5))
    assert not np.array_equal(result.image, other.image)
    again = pipe.generate(request)
    np.testing.assert_array_equal(result.image, again.image)
    float_image = (image.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)
    np.testing.assert_array_equal(pipe.generate(_request(steps=10, init_image=float_image, strength=0.5)).image, result.image)
    assert pipe.generate(_request(steps=10, init_image=image, strength=1.0)).steps == 10


def test_pndm_calls_the_unet_steps_plus_one_times(tmp_path):
    pipe, _ = _pipe(tmp_path)
    result = pipe.generate(_request(scheduler="pndm", steps=5))
    assert result.unet_calls == 6 and result.steps == 6


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "dpmpp", "pndm"])
def test_every_scheduler_runs_deterministically(tmp_path, scheduler):
    pipe, _ = _pipe(tmp_path)
    first = pipe.generate(_request(scheduler=scheduler))
    second = pipe.generate(_request(scheduler=scheduler))
    np.testing.assert_array_equal(first.image, second.image)
    assert np.isfinite(first.latents).all()


def test_long_prompt_is_truncated_with_warning(tmp_path):
    pipe, engine = _pipe(tmp_path)
    with pytest.warns(PromptTruncatedWarning):
        result = pipe.generate(_request(prompt=", ".join([PROMPT] * 10)))
    assert result.image.shape == (64, 64, 3)
    assert engine.models["text_encoder"].calls[-1]["input_ids"].shape == (1, 77)


def test_short_prompt_gives_no_warning(tmp_path):
    pipe, _ = _pipe(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptTruncatedWarning)
        pipe.generate(_request())


def test_save_png_round_trips(tmp_path):
    from PIL import Image

    pipe, _ = _pipe(tmp_path)
    result = pipe.generate(_request())
    path = result.save_png(tmp_path / "out" / "image.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), result.image)
    assert result.to_pil().size == (64, 64)


def test_per_part_compute_units(tmp_path):
    pipe, engine = _pipe(tmp_path, compute_unit={"default": "FAKE", "vae_decoder": "FAKE_GPU"})
    pipe.generate(_request())
    assert engine.load_compute_units["vae_decoder"] == "FAKE_GPU"
    assert engine.load_compute_units["unet"] == "FAKE"


def test_recorder_can_be_swapped_between_generations(tmp_path):
    first, second = TimingRecorder(), TimingRecorder()
    pipe, _ = _pipe(tmp_path, recorder=first, reduce_memory=True)
    pipe.generate(_request())
    pipe.recorder = second
    pipe.generate(_request())
    assert first.stages() == second.stages() and "load/unet" in second.stages()


def test_close_releases_every_model(tmp_path):
    pipe, engine = _pipe(tmp_path)
    pipe.load()
    pipe.close()
    assert pipe.loaded_parts == ()
    assert all(model.closed for model in engine.models.values())


# ---------------------------------------------------------------- errors before any model runs

@pytest.mark.parametrize(
    "set_options, request_options, message",
    [
        ({"omit": ("vae_decoder",)}, {}, "has no vae_decoder"),
        ({"omit": ("merges",)}, {}, "has no merges"),
        ({}, {"refiner": True}, "has no refiner"),
        ({}, {"init_image": np.zeros((64, 64, 3), np.uint8), "strength": 0.5}, "has no vae_encoder"),
        ({"omit": ("unet_chunk2",), "chunked": True}, {}, "chunked unet without unet_chunk2"),
        ({"chunked": True, "chunk2_rename": {"skip": "add_51"}}, {},
         "unet_chunk2 input add_51.*neither an output of unet_chunk1 .*cond_term, skip.*do not fit"),
        ({"decoder_latent": 16}, {}, "vae_decoder takes z.*different image sizes"),
        ({"vae_encoder": True, "encoder_latent": 16}, {"init_image": np.zeros((64, 64, 3), np.uint8), "strength": 0.5},
         "vae_encoder takes x"),
        ({"vae_encoder": True}, {"init_image": np.zeros((32, 32, 3), np.uint8), "strength": 0.5}, "init_image is 32x32"),
        ({"refiner": True, "refiner_hidden": 20}, {"refiner": True}, "refiner expects encoder_hidden_states with 20.*mismatch"),
        ({"refiner": True, "refiner_time_ids": 6}, {"refiner": True}, "refiner takes time_ids of 6.*takes 5"),
        ({"unet_time_ids": 5}, {}, "unet takes time_ids of 5"),
        ({"widths": (8, 16), "pooled": 16}, {}, None),  # consistent widths are fine
        ({"resolution": 128}, {}, "resolution 128"),
        ({"batch": 1, "unet_batch_one": False}, {}, "unet_batch_one is not set"),
        ({}, {"steps": 0}, "steps must be a positive integer"),
        ({}, {"scheduler": "ddim"}, "unknown scheduler"),
        ({}, {"scheduler_config": {"timestep_spacing": "sideways"}}, "timestep_spacing"),
        ({"vae_encoder": True}, {"init_image": np.zeros((64, 64, 3), np.uint8), "strength": 0.0}, "strength must be in"),
        ({"vae_encoder": True}, {"init_image": np.zeros((64, 64, 3), np.uint8), "strength": 1.5}, "strength must be in"),
        ({"vae_encoder": True}, {"init_image": np.zeros((64, 64, 3), np.uint8)}, "strength must be in"),
        ({"vae_encoder": True}, {"init_image": np.zeros((64, 64, 3), np.uint8), "strength": 0.1}, "no denoising step"),
        ({}, {"strength": 0.5}, "img2img only"),
        ({"refiner": True}, {"refiner": True, "high_noise_frac": 1.0}, "high_noise_frac"),
        ({"vae_encoder": True}, {"init_image": np.full((1, 3, 64, 64), 3.0, np.float32), "strength": 0.5}, r"\[-1, 1\]"),
    ],
)
def test_bad_input_fails_before_any_model_runs(tmp_path, set_options, request_options, message):
    pipe, engine = _pipe(tmp_path, **set_options)
    request = _request(**request_options)
    if message is None:
        pipe.validate(request)
        return
    with pytest.raises(PipelineError, match=message):
        pipe.validate(request)
    with pytest.raises(PipelineError, match=message):
        pipe.generate(request)
    assert engine.events("predict") == [] and engine.events("load") == []


def test_refiner_width_error_names_both_sides(tmp_path):
    pipe, _ = _pipe(tmp_path, refiner=True, refiner_hidden=20)
    with pytest.raises(PipelineError) as caught:
        pipe.validate(_request(refiner=True))
    text = str(caught.value)
    assert "20" in text and "12" in text and "text_encoder_2" in text
