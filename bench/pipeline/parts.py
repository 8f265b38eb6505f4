"""Model parts of a model set, and the slots that load, describe and release them.

A *part* is one model file the pipeline runs (`text_encoder`, `unet_chunk1`, `vae_decoder`, ...);
its name is the `ModelSet.files` key and the suffix of its `load/<part>` span. `ModelSlots` is the
only place that calls `engine.compile` / `engine.load` / `Model.close`, so loading is timed in one
way (recorder spans) and released in one way, eagerly or, under `reduce_memory`, around each stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.engines.base import Engine, Model
from bench.engines.model_io import ModelIO, read_model_io
from bench.errors import PipelineError
from bench.measure.recorder import Recorder
from bench.models.variant import ModelSet


def denoiser_parts(model_set: ModelSet, kind: str) -> tuple[str, ...]:
    """The parts of the UNet (`kind="unet"`) or refiner: the whole model, or its two chunks."""
    chunks = (f"{kind}_chunk1", f"{kind}_chunk2")
    if model_set.has(chunks[0]) or model_set.has(chunks[1]):
        missing = [c for c in chunks if not model_set.has(c)]
        if missing:
            raise PipelineError(f"model set {model_set.id!r} has a chunked {kind} without {missing[0]}")
        return chunks
    return (kind,) if model_set.has(kind) else ()


def conform(model: Model, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's inputs taken from `values`, cast to the dtypes (and shapes) the loaded model declares.

    Casting against the loaded model, not the file's description, keeps engines that declare
    different dtypes (an engine's precision mode, say) fed correctly.
    """
    feed = {}
    for spec in model.input_specs:
        if spec.name not in values:
            raise PipelineError(f"{model.path}: the pipeline has no value for input {spec.describe()}")
        value = np.asarray(values[spec.name])
        if all(d > 0 for d in spec.shape) and value.size == int(np.prod(spec.shape)):
            value = value.reshape(spec.shape)
        feed[spec.name] = value.astype(spec.dtype, copy=False)
    return feed


def zero_inputs(model: Model) -> dict[str, np.ndarray]:
    """Zeros of the shapes and dtypes `model` declares (its first prediction's inputs)."""
    return {s.name: np.zeros(tuple(d if d and d > 0 else 1 for d in s.shape), dtype=s.dtype) for s in model.input_specs}


class ModelSlots:
    """Loads parts of a model set through an engine, with recorder spans, and releases them."""

    def __init__(
        self,
        model_set: ModelSet,
        engine: Engine,
        compute_unit: str | Mapping[str, str],
        recorder: Recorder,
        engine_options: Mapping[str, object] | None = None,
    ) -> None:
        self.model_set = model_set
        self.engine = engine
        self.compute_unit = compute_unit
        self.recorder = recorder
        self.engine_options = dict(engine_options or {})
        self._loaded: dict[str, Model] = {}
        self._io: dict[str, ModelIO] = {}

    def compute_unit_for(self, part: str) -> str:
        """The compute unit of `part`: one for all parts, or a per-part mapping with a `default`."""
        if isinstance(self.compute_unit, str):
            return self.compute_unit
        if part in self.compute_unit:
            return self.compute_unit[part]
        if "default" in self.compute_unit:
            return self.compute_unit["default"]
        raise PipelineError(f"no compute unit for part {part!r} (and no 'default') in {dict(self.compute_unit)}")

    def path(self, part: str) -> Path:
        if not self.model_set.has(part):
            raise PipelineError(f"model set {self.model_set.id!r} has no {part}")
        return Path(self.model_set.files[part])

    def is_loaded(self, part: str) -> bool:
        return part in self._loaded

    @property
    def loaded_parts(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def io(self, part: str) -> ModelIO:
        """Specs of `part`: from the loaded model, else from the engine or the model file."""
        if part in self._loaded:
            model = self._loaded[part]
            return ModelIO.of(model.input_specs, model.output_specs)
        if part not in self._io:
            describe = getattr(self.engine, "describe", None)
            if callable(describe):
                inputs, outputs = describe(self.path(part))
                self._io[part] = ModelIO.of(inputs, outputs)
            else:
                self._io[part] = read_model_io(self.path(part))
        return self._io[part]

    def load(self, part: str, *, first_predict: bool = True) -> Model:
        """Compile (where the engine separates it), load and optionally run a first prediction."""
        if part in self._loaded:
            return self._loaded[part]
        path = self.path(part)
        compute_unit = self.compute_unit_for(part)
        prepare = getattr(self.engine, "prepare", None)
        if callable(prepare):
            prepare()  # engine start-up (e.g. `import coremltools`) stays outside every timed span
        if getattr(self.engine, "separate_compile", False):
            with self.recorder.span(f"compile/{part}"):
                path = Path(self.engine.compile(path, compute_unit))
        with self.recorder.span(f"load/{part}"):
            model = self.engine.load(path, compute_unit, **self.engine_options)
        self._loaded[part] = model
        if getattr(model, "wants_compute_plan", False):
            with self.recorder.span(f"compute_plan/{part}"):  # Core ML's plan does a load of its own
                model.load_compute_plan()
        if first_predict:
            inputs = zero_inputs(model)
            with self.recorder.span(f"first_predict/{part}"):
                model.predict(inputs)
        return model

    def get(self, part: str) -> Model:
        """The loaded model of `part` (loading it, without a first prediction, if needed)."""
        return self._loaded[part] if part in self._loaded else self.load(part, first_predict=False)

    def release(self, part: str) -> None:
        """Close and forget the model of `part`, if loaded."""
        model = self._loaded.pop(part, None)
        if model is not None:
            model.close()

    @contextmanager
    def using(self, parts: tuple[str, ...], *, transient: bool) -> Iterator[tuple[Model, ...]]:
        """The models of `parts`; when `transient`, loaded just before and released right after."""
        try:
            yield tuple(self.get(part) for part in parts)
        finally:
            if transient:
                for part in parts:
                    self.release(part)

    def close(self) -> None:
        """Release every loaded model."""
        for part in list(self._loaded):
            self.release(part)
