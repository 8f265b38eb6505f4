"""Case executors: what a worker process drives to measure one case.

The worker owns phases, repeats and measurement; an executor only knows how to prepare, load and
generate for its case, reporting every stage to the recorder it was given. `PipelineExecutor` is
the real one (model zoo + engine + SDXL pipeline); tests plug in fakes through the same protocol.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.errors import BenchError, PipelineError
from bench.measure.recorder import Recorder
from bench.models.variant import ModelSet
from bench.suite.case import Case

DEFAULT_EXECUTOR = "bench.case_exec:PipelineExecutor"
#: "Not resolved by the runner" (None means "resolved: there is none").
UNRESOLVED: Any = object()


@dataclass
class CaseMeta:
    """What the resolved models say about the case (fills the results' case columns)."""

    attention: str | None = None
    quantization: str | None = None
    resolution: int | None = None
    batch: int | None = None
    model_root: str | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Generation:
    """What one generation returned that the harness records."""

    unet_calls: int | None = None
    image: np.ndarray | None = None  # (H, W, 3) uint8


@dataclass
class QualityMeasurement:
    """A quality figure for the case (UNet PSNR against the variant's quality baseline)."""

    stage: str
    metric: str
    value: float
    unit: str
    note: str = ""


class CaseExecutor(Protocol):
    """Prepares, loads and generates for one case; every stage goes through the recorder."""

    def prepare(self) -> CaseMeta: ...

    def load(self) -> None: ...

    def generate(self) -> Generation: ...

    def quality(self) -> list[QualityMeasurement]: ...

    def close(self) -> None: ...


#: `factory(case, recorder, model_set=..., baseline_set=...)`: the model sets arrive resolved by the
#: runner (None when it had none), so workers need not import the zoo or rebuild anything.
ExecutorFactory = Callable[..., CaseExecutor]


def model_set_to_dict(model_set: ModelSet) -> dict[str, Any]:
    """JSON-ready form of a ModelSet, passed from the runner to its workers."""
    return {
        "id": model_set.id,
        "root": str(model_set.root),
        "files": {stage: str(path) for stage, path in model_set.files.items()},
        "resolution": model_set.resolution,
        "attention": model_set.attention,
        "quantization": model_set.quantization,
        "unet_batch_one": model_set.unet_batch_one,
        "labels": dict(model_set.labels),
    }


def model_set_from_dict(data: dict[str, Any]) -> ModelSet:
    return ModelSet(
        id=data["id"],
        root=Path(data["root"]),
        files={stage: Path(path) for stage, path in data["files"].items()},
        resolution=int(data["resolution"]),
        attention=data["attention"],
        quantization=data["quantization"],
        unet_batch_one=bool(data.get("unet_batch_one", False)),
        labels=dict(data.get("labels", {})),
    )


def load_executor_factory(spec: str) -> ExecutorFactory:
    """`module:attr` -> the factory (a class or function taking (case, recorder))."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise BenchError(f"bad executor {spec!r}: expected module:attribute")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as error:
        raise BenchError(f"cannot load executor {spec!r}: {error}") from None


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
    """The real executor: zoo model set + engine + `SDXLPipeline`."""

    def __init__(
        self,
        case: Case,
        recorder: Recorder,
        *,
        model_set: ModelSet | None = None,
        baseline_set: Any = UNRESOLVED,
    ) -> None:
        self.case = case
        self.recorder = recorder
        self.pipe: Any = None
        self.model_set = model_set
        self.baseline_set = baseline_set
        self.request: Any = None

    def prepare(self) -> CaseMeta:
        from bench.engines import get_engine
        from bench.pipeline import GenerationRequest, SDXLPipeline

        case = self.case
        if self.model_set is None:  # run outside the runner: resolve here
            from bench.models import zoo

            self.model_set = zoo.resolve(case.model, build_tiny=True)
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
        self.pipe = SDXLPipeline(
            self.model_set, engine, case.compute_unit, recorder=self.recorder, reduce_memory=case.reduce_memory
        )
        self.pipe.validate(self.request)
        # A batch-2 UNet always runs [negative, positive] (also without guidance, as Apple's Swift
        # pipeline does); a batch-one UNet is called once per row instead.
        batch = 1 if self.model_set.unet_batch_one else 2
        return CaseMeta(
            attention=self.model_set.attention,
            quantization=self.model_set.quantization,
            resolution=self.model_set.resolution,
            batch=batch,
            model_root=str(self.model_set.root),
            files={stage: str(path) for stage, path in self.model_set.files.items()},
        )

    def load(self) -> None:
        if not self.case.reduce_memory:  # reduceMemory loads each part inside generate()
            self.pipe.load(self.pipe.parts_for(self.request))

    def generate(self) -> Generation:
        result = self.pipe.generate(self.request)
        return Generation(unet_calls=getattr(result, "unet_calls", None), image=getattr(result, "image", None))

    def quality(self) -> list[QualityMeasurement]:
        from bench.models import quality

        baseline = self.baseline_set
        if baseline is UNRESOLVED:  # run outside the runner: ask the zoo
            from bench.models import zoo

            baseline_id = zoo.quality_baseline(self.case.model)
            baseline = zoo.resolve(baseline_id, build_tiny=True) if baseline_id else None
        if baseline is None or baseline.id == self.model_set.id:
            return []  # the variant is its own baseline (or has none): no PSNR to report
        psnr = quality.unet_psnr(self.model_set, baseline)
        return [QualityMeasurement("unet", "psnr", float(psnr), "dB", f"against {baseline.id}")]

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()


def save_png(image: np.ndarray, path: Path) -> None:
    """Save an (H, W, 3) uint8 image."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow library chatter on stdout/stderr (progress bars, version warnings)."""
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def prepare_models(cases: Any, status: Callable[[str], None] = lambda text: None) -> dict[str, dict[str, Any]]:
    """Make every model the cases need present before any case runs; describe them for the manifest.

    Tiny models are generated on first use; an absent real model stops the run here with the zoo's
    ModelNotFoundError, which names the variant and the `bench models fetch` command.
    """
    from bench.measure.hashing import model_file_hashes
    from bench.models import zoo

    runnable = [case for case in cases if not case.skip_reason]
    wanted = list(dict.fromkeys(case.model for case in runnable))
    baselines: list[str] = []
    for case in runnable:
        if case.quality:
            baseline = zoo.quality_baseline(case.model)
            if baseline and baseline not in wanted and baseline not in baselines:
                baselines.append(baseline)
    def generated(model: str) -> bool:
        try:
            return zoo.get_variant(model).generated
        except BenchError:
            return False  # a local folder: resolve() checks it

    # Downloads and folders first: an absent one stops the run before anything is generated.
    info: dict[str, dict[str, Any]] = {}
    for model in sorted([*wanted, *baselines], key=generated):
        if generated(model) and not zoo.is_present(model):
            status(f"generating model {model} (first use)")
        with _quiet():  # coremltools' progress bars and warnings while generating; errors still raise
            model_set = zoo.resolve(model, build_tiny=True)
        status(f"hashing model files of {model}")
        info[model] = {
            "id": model_set.id,
            "root": str(model_set.root),
            "resolution": model_set.resolution,
            "attention": model_set.attention,
            "quantization": model_set.quantization,
            "role": "quality baseline" if model in baselines else "measured",
            "quality_baseline": zoo.quality_baseline(model) if model in wanted else None,
            "sha256": model_file_hashes(model_set.files),
            "model_set": model_set_to_dict(model_set),
        }
    return info
