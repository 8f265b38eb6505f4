"""The SDXL pipeline over any engine: text-to-image, base + refiner, img2img, chunked UNet.

It follows diffusers' `StableDiffusionXLPipeline` (and its img2img / refiner variants) in numpy and
drives the models only through the engine protocol, so the same code runs Core ML on macOS and the
reference engine anywhere. It has no timing code: every stage runs inside a span of the injected
recorder, named as the README's "Results" section lists:

- loading: `compile/<part>` (engines with a separate compile step), `load/<part>`,
  `first_predict/<part>` (in `load()`; under `reduce_memory` only `compile/` and `load/`, inside
  `end_to_end`, just before the stage that needs the part);
- generation: `end_to_end` around `tokenize`, `text_encoder`, `text_encoder_2`, `vae_encoder`
  (img2img), `diffusion` (the loop: `unet` or `refiner` then `scheduler`, each with `step=i`) and
  `vae_decoder`. The `unet` / `refiner` span covers `scale_model_input` and the UNet call(s) of
  the step; the `scheduler` span the guidance combination and `scheduler.step`.

Choices where the references differ (each documented where it is made):
- base -> refiner hand-over as diffusers' ensemble of experts (the base runs the timesteps
  >= (1 - high_noise_frac) * 1000), with one scheduler across the hand-over as the Swift pipeline
  does (diffusers restarts the scheduler for the refiner; identical for Euler);
- the negative prompt is encoded even when empty (Swift; diffusers zeroes an absent one);
- noise is numpy PCG64 from the seed (see `latents.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.engines.base import Engine, Model, TensorSpec
from bench.engines.model_io import ModelIO
from bench.errors import PipelineError
from bench.measure.recorder import NullRecorder, Recorder
from bench.models.variant import MODEL_PARTS, ModelSet
from bench.pipeline.conditioning import (
    HIDDEN_OUTPUT,
    POOLED_OUTPUT,
    EncodedPrompt,
    TextConditioning,
    base_conditioning,
    base_time_ids,
    encoder_outputs,
    refiner_conditioning,
    refiner_time_ids,
)
from bench.pipeline.denoiser import Denoiser
from bench.pipeline.image import save_png, to_model_input, to_uint8
from bench.pipeline.latents import (
    SDXL_VAE_SCALING_FACTOR,
    initial_noise,
    make_rng,
    sample_posterior,
)
from bench.pipeline.parts import ModelSlots, conform, denoiser_parts
from bench.pipeline.request import GenerationRequest
from bench.pipeline.schedulers import BaseScheduler, make_scheduler
from bench.pipeline.tokenizer import TEXT_ENCODER_2_PAD_TOKEN, CLIPTokenizer

BASE_TIME_IDS = 6
REFINER_TIME_IDS = 5


@dataclass
class GenerationResult:
    """One generated image and what it took."""

    image: np.ndarray  # (H, W, 3) uint8
    latents: np.ndarray  # (1, C, h, w) float32, the denoised latents (before VAE scaling)
    decoded: np.ndarray  # (1, 3, H, W) float32, the VAE decoder output in [-1, 1]
    timesteps: np.ndarray  # the timesteps run, in order
    unet_calls: int  # UNet invocations, base and refiner (a chunked UNet call counts once)
    refiner_calls: int = 0  # the refiner's share of unet_calls
    refiner_start_step: int | None = None  # index into `timesteps` where the refiner took over
    request: GenerationRequest | None = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        """Denoising steps run (PNDM runs one more than requested; img2img fewer)."""
        return len(self.timesteps)

    def save_png(self, path: str | Path) -> Path:
        return save_png(self.image, path)

    def to_pil(self):  # -> PIL.Image.Image
        from PIL import Image

        return Image.fromarray(self.image)


@dataclass(frozen=True)
class _Interfaces:
    """The specs validation found, reused by `generate`."""

    unet: Denoiser
    refiner: Denoiser | None
    text_inputs: dict[str, TensorSpec]  # part -> its token-id input
    vae_decoder: ModelIO
    vae_encoder: ModelIO | None


class SDXLPipeline:
    """SDXL generation over one model set, one engine and one compute unit (or one per part)."""

    def __init__(
        self,
        model_set: ModelSet,
        engine: Engine,
        compute_unit: str | Mapping[str, str],
        *,
        recorder: Recorder | None = None,
        reduce_memory: bool = False,
        engine_options: Mapping[str, object] | None = None,
    ) -> None:
        self.model_set = model_set
        self.engine = engine
        self.reduce_memory = reduce_memory
        self._slots = ModelSlots(model_set, engine, compute_unit, NullRecorder(), engine_options)
        self.recorder = recorder if recorder is not None else NullRecorder()
        self._tokenizers: dict[str, CLIPTokenizer] = {}

    @property
    def recorder(self) -> Recorder:
        """Where stage spans go; may be replaced between generations (say, one per repeat)."""
        return self._slots.recorder

    @recorder.setter
    def recorder(self, recorder: Recorder) -> None:
        self._slots.recorder = recorder

    # ------------------------------------------------------------------ parts and loading

    def parts_for(self, request: GenerationRequest) -> tuple[str, ...]:
        """Model parts `request` runs, in pipeline order (whether or not the model set has them)."""
        parts = ["text_encoder", "text_encoder_2"]
        if request.img2img:
            parts.append("vae_encoder")
        parts.extend(denoiser_parts(self.model_set, "unet") or ("unet",))
        if request.refiner:
            parts.extend(denoiser_parts(self.model_set, "refiner") or ("refiner",))
        parts.append("vae_decoder")
        return tuple(parts)

    def load(self, parts: tuple[str, ...] | list[str] | None = None) -> None:
        """Load `parts` (default: every model part of the set), each with a first prediction.

        Under `reduce_memory` nothing is loaded here: each part loads before its stage and is
        released after it.
        """
        if self.reduce_memory:
            return
        if parts is None:
            parts = [p for p in MODEL_PARTS if self.model_set.has(p)]
        for part in parts:
            if part not in MODEL_PARTS:
                raise PipelineError(f"unknown part {part!r}; expected one of {', '.join(MODEL_PARTS)}")
            self._slots.load(part, first_predict=True)

    @property
    def loaded_parts(self) -> tuple[str, ...]:
        return self._slots.loaded_parts

    def close(self) -> None:
        """Release every loaded model."""
        self._slots.close()

    # ------------------------------------------------------------------ validation

    def validate(self, request: GenerationRequest) -> None:
        """Raise `PipelineError` if this model set cannot serve `request`; runs no model."""
        self._check(request)

    def _check(self, request: GenerationRequest) -> _Interfaces:
        self._check_request(request)
        missing = [p for p in self.parts_for(request) if not self.model_set.has(p)]
        missing += [k for k in ("vocab", "merges") if not self.model_set.has(k)]
        if missing:
            raise PipelineError(
                f"model set {self.model_set.id!r} has no {', '.join(missing)}, which this request needs "
                f"(it has {', '.join(sorted(self.model_set.files))})"
            )
        text_inputs, widths, pooled_width = {}, {}, None
        for part in ("text_encoder", "text_encoder_2"):
            io = self._slots.io(part)
            text_inputs[part] = _token_input(io, part)
            widths[part], pooled = _text_encoder_widths(io, part)
            if part == "text_encoder_2":
                pooled_width = pooled
        sequence = text_inputs["text_encoder"].shape[-1]
        if text_inputs["text_encoder_2"].shape[-1] != sequence:
            raise PipelineError(
                f"text encoders take different lengths: {text_inputs['text_encoder'].describe()} vs "
                f"{text_inputs['text_encoder_2'].describe()}"
            )
        unet = self._denoiser("unet")
        latent = unet.latent_shape
        self._check_denoiser(unet, sequence, pooled_width, BASE_TIME_IDS,
                             _sum_or_none(widths["text_encoder"], widths["text_encoder_2"]), "text_encoder + text_encoder_2")
        if unet.batch == 1 and not self.model_set.unet_batch_one:
            raise PipelineError(f"model set {self.model_set.id!r}: unet takes batch 1 but unet_batch_one is not set")
        if unet.batch == 2 and self.model_set.unet_batch_one:
            raise PipelineError(f"model set {self.model_set.id!r} says unet_batch_one but its unet takes batch 2")
        image_size = (8 * latent[1], 8 * latent[2])
        if self.model_set.resolution not in image_size:
            raise PipelineError(
                f"model set {self.model_set.id!r} says resolution {self.model_set.resolution} but its unet latent "
                f"is {latent[1]}x{latent[2]} (a {image_size[0]}x{image_size[1]} image)"
            )
        refiner = None
        if request.refiner:
            refiner = self._denoiser("refiner")
            if refiner.latent_shape != latent:
                raise PipelineError(
                    f"refiner latent {refiner.latent_shape} does not match the unet latent {latent}"
                )
            self._check_denoiser(refiner, sequence, pooled_width, REFINER_TIME_IDS,
                                 widths["text_encoder_2"], "text_encoder_2")
        vae_decoder = self._slots.io("vae_decoder")
        z = _single(vae_decoder.inputs, "vae_decoder", "input")
        if tuple(z.shape[1:]) != latent:
            raise PipelineError(
                f"vae_decoder takes {z.describe()} but the unet latent is (C, h, w) = {latent}: "
                "the models are for different image sizes"
            )
        vae_encoder = None
        if request.img2img:
            vae_encoder = self._slots.io("vae_encoder")
            x = _single(vae_encoder.inputs, "vae_encoder", "input")
            if tuple(x.shape[-2:]) != image_size:
                raise PipelineError(
                    f"vae_encoder takes {x.describe()} but the unet makes {image_size[0]}x{image_size[1]} images"
                )
            image = to_model_input(request.init_image)
            if tuple(image.shape[-2:]) != image_size:
                raise PipelineError(
                    f"init_image is {image.shape[-2]}x{image.shape[-1]}; this model set needs {image_size[0]}x{image_size[1]}"
                )
        for part in ("text_encoder", "text_encoder_2"):
            self._tokenizer(part, int(text_inputs[part].shape[-1]))
        return _Interfaces(unet, refiner, text_inputs, vae_decoder, vae_encoder)

    def _check_request(self, request: GenerationRequest) -> None:
        steps = request.steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise PipelineError(f"steps must be a positive integer, got {steps!r}")
        if not math.isfinite(request.guidance_scale):
            raise PipelineError(f"guidance_scale must be finite, got {request.guidance_scale!r}")
        make_scheduler(request.scheduler, **dict(request.scheduler_config or {}))
        if request.refiner and not 0.0 < request.high_noise_frac < 1.0:
            raise PipelineError(f"high_noise_frac must be in (0, 1) with a refiner, got {request.high_noise_frac!r}")
        if request.img2img:
            strength = request.strength
            if strength is None or not 0.0 < strength <= 1.0:
                raise PipelineError(f"img2img strength must be in (0, 1], got {strength!r}")
            if int(steps * strength) < 1:
                raise PipelineError(
                    f"strength {strength} of {steps} steps leaves no denoising step (needs steps * strength >= 1)"
                )
        elif request.strength is not None:
            raise PipelineError(f"strength {request.strength} applies to img2img only; pass init_image too")

    def _denoiser(self, kind: str) -> Denoiser:
        parts = denoiser_parts(self.model_set, kind)
        return Denoiser(kind, parts, [self._slots.io(p) for p in parts])

    @staticmethod
    def _check_denoiser(
        denoiser: Denoiser,
        sequence: int,
        pooled_width: int | None,
        time_ids: int,
        hidden_width: int | None,
        source: str,
    ) -> None:
        name = denoiser.name
        if denoiser.batch not in (1, 2):
            raise PipelineError(f"{name} takes batch {denoiser.batch}; expected 1 or 2")
        if hidden_width is not None and denoiser.hidden_width != hidden_width:
            raise PipelineError(
                f"{name} expects encoder_hidden_states with {denoiser.hidden_width} channels but {source} "
                f"give {hidden_width}: conditioning width mismatch"
            )
        if denoiser.sequence_length != sequence:
            raise PipelineError(f"{name} expects {denoiser.sequence_length} tokens; the text encoders give {sequence}")
        if denoiser.time_ids_width is not None and denoiser.time_ids_width != time_ids:
            kind = "refiner (size, crop, aesthetic score)" if time_ids == REFINER_TIME_IDS else "base (size, crop, target)"
            raise PipelineError(
                f"{name} takes time_ids of {denoiser.time_ids_width} values per row; a {kind} model takes {time_ids}"
            )
        if denoiser.text_embeds_width is not None and pooled_width is not None and denoiser.text_embeds_width != pooled_width:
            raise PipelineError(
                f"{name} takes text_embeds of width {denoiser.text_embeds_width}; text_encoder_2 pools {pooled_width}"
            )

    def _tokenizer(self, part: str, length: int) -> CLIPTokenizer:
        if part not in self._tokenizers:
            pad = TEXT_ENCODER_2_PAD_TOKEN if part == "text_encoder_2" else "<|endoftext|>"
            self._tokenizers[part] = CLIPTokenizer(
                self.model_set.files["vocab"], self.model_set.files["merges"], pad_token=pad, max_length=length
            )
        return self._tokenizers[part]

    # ------------------------------------------------------------------ generation

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate one image; deterministic for a given seed, engine and model set."""
        interfaces = self._check(request)
        if not self.reduce_memory:
            self.load([p for p in self.parts_for(request) if not self._slots.is_loaded(p)])
        rng = make_rng(request.seed)
        scheduler = make_scheduler(request.scheduler, **dict(request.scheduler_config or {}))
        cfg = request.classifier_free_guidance
        span = self.recorder.span
        with span("end_to_end"):
            prompts = [request.negative_prompt, request.prompt] if cfg else [request.prompt]
            with span("tokenize"):
                ids = {
                    part: [self._tokenizers[part](p) for p in prompts] for part in ("text_encoder", "text_encoder_2")
                }
            encoded_1 = self._encode("text_encoder", ids["text_encoder"], interfaces.text_inputs["text_encoder"])
            encoded_2 = self._encode("text_encoder_2", ids["text_encoder_2"], interfaces.text_inputs["text_encoder_2"])
            base_cond = base_conditioning(encoded_1, encoded_2)
            refiner_cond = refiner_conditioning(encoded_2) if request.refiner else None

            scheduler.set_timesteps(request.steps)
            timesteps, refiner_from = self._schedule(scheduler, request)
            latent_shape = (1, *interfaces.unet.latent_shape)
            noise = initial_noise(rng, latent_shape)
            scaling = float(self.model_set.labels.get("vae_scaling_factor", SDXL_VAE_SCALING_FACTOR))
            if request.img2img:
                clean = self._encode_image(request.init_image, interfaces.vae_encoder, rng) * np.float32(scaling)
                latents = scheduler.add_noise(clean, noise, timesteps[:1]).astype(np.float32)
            else:
                latents = noise * np.float32(scheduler.init_noise_sigma)

            latents, calls, refiner_calls = self._denoise(
                request, scheduler, timesteps, refiner_from, latents, base_cond, refiner_cond, interfaces, rng
            )
            decoded = self._decode(latents / np.float32(scaling), interfaces.vae_decoder)
            image = to_uint8(decoded)
        return GenerationResult(
            image=image,
            latents=latents,
            decoded=decoded,
            timesteps=np.asarray(timesteps),
            unet_calls=calls,
            refiner_calls=refiner_calls,
            refiner_start_step=refiner_from if request.refiner else None,
            request=request,
        )

    def _encode(self, part: str, ids: list[np.ndarray], spec: TensorSpec) -> list[EncodedPrompt]:
        with self._slots.using((part,), transient=self.reduce_memory) as (model,), self.recorder.span(part):
            return [encoder_outputs(model.predict(conform(model, {spec.name: i.reshape(spec.shape)})), part) for i in ids]

    def _encode_image(self, init_image: object, io: ModelIO | None, rng: np.random.Generator) -> np.ndarray:
        assert io is not None
        x = _single(io.inputs, "vae_encoder", "input")
        image = to_model_input(init_image)
        with self._slots.using(("vae_encoder",), transient=self.reduce_memory) as (model,), \
                self.recorder.span("vae_encoder"):
            outputs = model.predict(conform(model, {x.name: image.reshape(x.shape)}))
            return sample_posterior(_pick_output(outputs, "latent", "vae_encoder"), rng)

    def _decode(self, latents: np.ndarray, io: ModelIO) -> np.ndarray:
        z = _single(io.inputs, "vae_decoder", "input")
        with self._slots.using(("vae_decoder",), transient=self.reduce_memory) as (model,), \
                self.recorder.span("vae_decoder"):
            outputs = model.predict(conform(model, {z.name: latents.reshape(z.shape)}))
            return np.asarray(_pick_output(outputs, "image", "vae_decoder"), dtype=np.float32)

    @staticmethod
    def _schedule(scheduler: BaseScheduler, request: GenerationRequest) -> tuple[np.ndarray, int | None]:
        """Timesteps to run (img2img skips the first ones) and the index where the refiner starts."""
        timesteps = scheduler.timesteps
        if request.img2img:
            # diffusers' img2img: strength keeps the last int(steps * strength) steps.
            t_start = max(request.steps - min(int(request.steps * request.strength), request.steps), 0)
            begin = t_start * scheduler.order
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(begin)
            timesteps = timesteps[begin:]
        if not request.refiner:
            return timesteps, None
        # diffusers' denoising_end / denoising_start: the base runs t >= (1 - high_noise_frac) * T.
        n_train = int(scheduler.config.num_train_timesteps)
        cutoff = round(n_train - request.high_noise_frac * n_train)
        below = np.flatnonzero(np.asarray(timesteps) < cutoff)
        return timesteps, int(below[0]) if len(below) else len(timesteps)

    def _denoise(
        self,
        request: GenerationRequest,
        scheduler: BaseScheduler,
        timesteps: np.ndarray,
        refiner_from: int | None,
        latents: np.ndarray,
        base_cond: TextConditioning,
        refiner_cond: TextConditioning | None,
        interfaces: _Interfaces,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, int, int]:
        cfg = request.classifier_free_guidance
        height, width = 8 * interfaces.unet.latent_shape[1], 8 * interfaces.unet.latent_shape[2]
        original = tuple(request.original_size or (height, width))
        target = tuple(request.target_size or (height, width))
        crop = tuple(request.crops_coords_top_left)
        base_ids = base_time_ids(original, crop, target)
        rows = 2 if cfg else 1
        stages = [("unet", interfaces.unet, base_cond, np.stack([base_ids] * rows))]
        if refiner_cond is not None and interfaces.refiner is not None:
            negative = refiner_time_ids(original, crop, request.negative_aesthetic_score)
            positive = refiner_time_ids(original, crop, request.aesthetic_score)
            stages.append(("refiner", interfaces.refiner, refiner_cond, np.stack([negative, positive][-rows:])))
        switch = len(timesteps) if refiner_from is None else refiner_from
        calls = {"unet": 0, "refiner": 0}
        current = 0 if switch > 0 else 1
        try:
            # The first denoiser loads before the loop (under reduce_memory); the refiner at the switch.
            models = tuple(self._slots.get(p) for p in stages[current][1].parts)
            with self.recorder.span("diffusion"):
                for i, t in enumerate(timesteps):
                    if i == switch and current == 0:
                        if self.reduce_memory:
                            for part in stages[0][1].parts:
                                self._slots.release(part)
                        current = 1
                        models = tuple(self._slots.get(p) for p in stages[1][1].parts)
                    name, denoiser, cond, time_ids = stages[current]
                    with self.recorder.span(name, step=i):
                        model_input = scheduler.scale_model_input(latents, t)
                        predictions, n_calls = self._predict(denoiser, models, model_input, t, cond, time_ids, cfg)
                        calls[name] += n_calls
                    with self.recorder.span("scheduler", step=i):
                        if cfg:
                            uncond, text = predictions
                            noise = uncond + np.float32(request.guidance_scale) * (text - uncond)
                        else:
                            noise = predictions[0]
                        latents = scheduler.step(noise, t, latents, generator=rng).prev_sample
        finally:
            if self.reduce_memory:
                for _, denoiser, _, _ in stages:
                    for part in denoiser.parts:
                        self._slots.release(part)
        return latents, calls["unet"] + calls["refiner"], calls["refiner"]

    @staticmethod
    def _predict(
        denoiser: Denoiser,
        models: tuple[Model, ...],
        sample: np.ndarray,
        t: float,
        cond: TextConditioning,
        time_ids: np.ndarray,
        cfg: bool,
    ) -> tuple[list[np.ndarray], int]:
        """Noise predictions [uncond, text] (CFG) or [text], and how many UNet calls they took.

        A batch-2 UNet runs [negative, positive] in one call; a batch-one UNet is called once per
        row. Without guidance a batch-2 UNet still runs a batch of 2 (the positive twice), as
        Apple's Swift pipeline always does; the first row is used.
        """
        if denoiser.batch == 2:
            rows = cond if cfg else cond.repeated(2)
            ids = time_ids if cfg else np.repeat(time_ids, 2, axis=0)
            inputs = denoiser.make_inputs(
                np.concatenate([sample, sample]), t, rows.encoder_hidden_states, rows.text_embeds, ids
            )
            output = denoiser.predict(models, inputs)
            return ([output[0:1], output[1:2]] if cfg else [output[0:1]]), 1
        predictions = []
        for row in range(cond.batch):
            one = cond.row(row)
            inputs = denoiser.make_inputs(sample, t, one.encoder_hidden_states, one.text_embeds, time_ids[row : row + 1])
            predictions.append(denoiser.predict(models, inputs))
        return predictions, len(predictions)


def _sum_or_none(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _single(specs: dict[str, TensorSpec], part: str, kind: str) -> TensorSpec:
    if not specs:
        raise PipelineError(f"{part} declares no {kind}s")
    return next(iter(specs.values()))


def _token_input(io: ModelIO, part: str) -> TensorSpec:
    spec = io.inputs.get("input_ids") or _single(io.inputs, part, "input")
    if len(spec.shape) not in (1, 2) or int(np.prod(spec.shape)) != spec.shape[-1]:
        raise PipelineError(f"{part} input {spec.describe()} is not a (1, tokens) id array")
    return spec


def _text_encoder_widths(io: ModelIO, part: str) -> tuple[int | None, int | None]:
    """(hidden width, pooled width) of a text encoder, None where its outputs are not declared."""
    if not io.outputs:
        return None, None
    for name in (HIDDEN_OUTPUT, POOLED_OUTPUT):
        if name not in io.outputs:
            raise PipelineError(f"{part} has outputs {sorted(io.outputs)}; expected {HIDDEN_OUTPUT!r} and {POOLED_OUTPUT!r}")
    return int(io.outputs[HIDDEN_OUTPUT].shape[-1]), int(io.outputs[POOLED_OUTPUT].shape[-1])


def _pick_output(outputs: Mapping[str, np.ndarray], name: str, part: str) -> np.ndarray:
    if name in outputs:
        return outputs[name]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    raise PipelineError(f"{part} returned {sorted(outputs)}; expected {name!r}")
