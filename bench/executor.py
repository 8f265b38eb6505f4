"""Case executors: what a worker process drives to measure one case (worker side).

The worker owns phases, repeats and measurement; an executor only knows how to prepare, load and
generate for its case, reporting every stage to the recorder it was given. `PipelineExecutor` is
the real one (resolved model set + engine + SDXL pipeline); tests plug in fakes through
`bench.plugin.CasePlugin`. Model preparation (the zoo, downloads, hashing) is the runner's side and
lives in `bench.model_prep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.engines import annotate
from bench.errors import PipelineError
from bench.measure.recorder import Recorder
from bench.models.variant import ModelSet, ResolvedModels
from bench.schema import Measurement, ModelLabels
from bench.suite.case import Case


def resolve_models(case: Case) -> ResolvedModels:
    """The case's model sets from the zoo (building tiny models if needed), for running a case
    outside the runner, which otherwise resolves them once before the run."""
    from bench.models import zoo

    baseline_id = zoo.quality_baseline(case.model) if case.quality else None
    return ResolvedModels(
        zoo.resolve(case.model, build_tiny=True),
        zoo.resolve(baseline_id, build_tiny=True) if baseline_id else None,
    )


@dataclass
class Generation:
    """What one generation returned that the harness records."""

    unet_calls: int | None = None
    image: np.ndarray | None = None  # (H, W, 3) uint8


class CaseExecutor(Protocol):
    """Prepares, loads and generates for one case; every stage goes through the recorder.

    `quality()` returns extra measurements (UNet PSNR against the quality baseline), taken after
    the measured repeats; their phase and timestamp are filled in by the worker.
    """

    def prepare(self) -> ModelLabels: ...

    def load(self) -> None: ...

    def generate(self) -> Generation: ...

    def quality(self) -> list[Measurement]: ...

    def close(self) -> None: ...


def synthetic_init_image(resolution: int, seed: int) -> np.ndarray:
    """A deterministic img2img input (1, 3, H, W) in [-1, 1]: smooth gradients plus mild noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    red = np.broadcast_to(ramp[None, :], (resolution, resolution))
    green = np.broadcast_to(ramp[:, None], (resolution, resolution))
    blue = -0.5 * (red + green)
    image = np.stack([red, green, blue])[None] + 0.05 * rng.standard_normal((1, 3, resolution, resolution))
    return np.clip(image, -1.0, 1.0).astype(np.float32)


def read_init_image(path: str, resolution: int) -> np.ndarray:
    """An image file as (1, 3, H, W) in [-1, 1], resized to the model's resolution; refused unless a
    regular file within the size and pixel limits (`bench.pipeline.init_image`)."""
    from bench.pipeline.init_image import read_init_image as read

    return read(path, resolution)


class PipelineExecutor:
    """The real executor: resolved model set + engine + `SDXLPipeline`."""

    def __init__(self, case: Case, recorder: Recorder, models: ResolvedModels) -> None:
        if models.model_set is None:
            raise PipelineError(f"model {case.model} was not resolved to a model set before the case ran")
        self.case = case
        self.recorder = recorder
        self.pipe: Any = None
        self.model_set: ModelSet = models.model_set
        self.baseline_set = models.baseline_set
        self.request: Any = None
        self.remote_engine: Any = None
        # Engines report on-device times and cache facts of the span they run in to this recorder.
        self._previous_listener = annotate.listen(recorder)

    def prepare(self) -> ModelLabels:
        from bench.engines import get_engine
        from bench.pipeline import GenerationRequest, SDXLPipeline

        case = self.case
        if case.resolution is not None and self.model_set.resolution != case.resolution:
            raise PipelineError(
                f"model {case.model} is {self.model_set.resolution}x{self.model_set.resolution}, "
                f"but the case asks for resolution {case.resolution}"
            )
        if case.attention is not None and self.model_set.attention != case.attention:
            raise PipelineError(
                f"model {case.model} uses {self.model_set.attention} attention, but the case says {case.attention}"
            )
        init_image = None
        if case.strength is not None:
            init_image = (
                read_init_image(case.init_image, self.model_set.resolution)
                if case.init_image
                else synthetic_init_image(self.model_set.resolution, case.seed)
            )
        self.request = GenerationRequest(
            prompt=case.prompt,
            negative_prompt=case.negative_prompt,
            steps=case.steps,
            scheduler=case.scheduler,
            guidance_scale=case.guidance,
            seed=case.seed,
            refiner=case.refiner,
            high_noise_frac=case.high_noise_frac,
            init_image=init_image,
            strength=case.strength,
        )
        engine = get_engine(case.engine)
        if case.device:  # `bench run --device`: every Core ML model runs on that iPhone / iPad
            from bench.engines.coreml_remote import RemoteCoreMLEngine

            engine = self.remote_engine = RemoteCoreMLEngine(case.device)
        options = {"optimization_hints": case.optimization_hints} if case.optimization_hints else None
        self.pipe = SDXLPipeline(
            self.model_set, engine, case.compute_unit, recorder=self.recorder, reduce_memory=case.reduce_memory,
            engine_options=options,
        )
        self.pipe.validate(self.request)
        # A batch-2 UNet always runs [negative, positive] (also without guidance, as Apple's Swift
        # pipeline does); a batch-one UNet is called once per row instead.
        batch = 1 if self.model_set.unet_batch_one else 2
        return ModelLabels(
            attention=self.model_set.attention,
            quantization=self.model_set.quantization,
            resolution=self.model_set.resolution,
            batch=batch,
        )

    def load(self) -> None:
        if not self.case.reduce_memory:  # reduceMemory loads each part inside generate()
            self.pipe.load(self.pipe.parts_for(self.request))

    def generate(self) -> Generation:
        result = self.pipe.generate(self.request)
        return Generation(unet_calls=getattr(result, "unet_calls", None), image=getattr(result, "image", None))

    def quality(self) -> list[Measurement]:
        from bench.models import quality

        baseline = self.baseline_set
        if baseline is None or baseline.id == self.model_set.id:
            return []  # the variant is its own baseline (or has none): no PSNR to report
        psnr = quality.unet_psnr(self.model_set, baseline)
        return [Measurement("unet", "psnr", float(psnr), "dB")]

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        if self.remote_engine is not None:
            self.remote_engine.close()  # unloads on the device and stops the ModelRunner session
        annotate.listen(self._previous_listener)


def save_png(image: np.ndarray, path: Path) -> None:
    """Save an (H, W, 3) uint8 image."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
