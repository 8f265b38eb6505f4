"""The UNet (or refiner) behind one call: a single model or two chunks wired by name.

Apple splits the UNet into `chunk1` and `chunk2` so each fits the Neural Engine's limits: chunk1
takes (some of) the UNet inputs and emits intermediate tensors; chunk2 takes those plus whichever
UNet inputs it needs and emits `noise_pred`. Chunk2's inputs are matched by name against chunk1's
outputs first, then the UNet inputs, as the Swift pipeline does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bench.engines.base import Model, TensorSpec
from bench.engines.model_io import ModelIO
from bench.errors import PipelineError
from bench.pipeline.parts import conform

#: Inputs every SDXL UNet takes; `time_ids` and `text_embeds` are SDXL's added conditioning.
REQUIRED_INPUTS: tuple[str, ...] = ("sample", "timestep", "encoder_hidden_states")
#: Every UNet input the pipeline can provide.
KNOWN_INPUTS: tuple[str, ...] = REQUIRED_INPUTS + ("time_ids", "text_embeds")
NOISE_OUTPUT = "noise_pred"


class Denoiser:
    """Interface of a (possibly chunked) UNet, and `predict` over its loaded models."""

    def __init__(self, name: str, parts: Sequence[str], ios: Sequence[ModelIO]) -> None:
        if not parts or len(parts) != len(ios) or len(parts) > 2:
            raise PipelineError(f"{name}: expected one model or two chunks, got {list(parts)}")
        self.name = name
        self.parts = tuple(parts)
        self.ios = tuple(ios)
        inputs = dict(ios[0].inputs)
        if len(ios) == 2:
            first, second = ios
            for spec_name, spec in second.inputs.items():
                if spec_name in first.outputs:
                    produced = first.outputs[spec_name]
                    if tuple(produced.shape) != tuple(spec.shape):
                        raise PipelineError(
                            f"{parts[1]} input {spec.describe()} does not match {parts[0]} output {produced.describe()}"
                        )
                elif spec_name not in KNOWN_INPUTS:
                    raise PipelineError(
                        f"{parts[1]} input {spec.describe()} is neither an output of {parts[0]} "
                        f"(which gives {_names(first.outputs)}) nor a UNet input: the chunks do not fit together"
                    )
                elif spec_name not in inputs:
                    inputs[spec_name] = spec
        unknown = [spec.describe() for name, spec in ios[0].inputs.items() if name not in KNOWN_INPUTS]
        if unknown:
            raise PipelineError(
                f"{parts[0]} takes {', '.join(unknown)}, which the pipeline cannot provide "
                f"(it provides {', '.join(KNOWN_INPUTS)})"
            )
        missing = [n for n in REQUIRED_INPUTS if n not in inputs]
        if missing:
            raise PipelineError(
                f"{name} ({' + '.join(parts)}) has no input {missing[0]!r}; it takes {', '.join(sorted(inputs))}"
            )
        outputs = ios[-1].outputs
        if NOISE_OUTPUT in outputs:
            self.output = NOISE_OUTPUT
        elif len(outputs) == 1:
            self.output = next(iter(outputs))
        else:
            raise PipelineError(f"{parts[-1]} has outputs {sorted(outputs)} and none is {NOISE_OUTPUT!r}")
        self.inputs: dict[str, TensorSpec] = inputs
        sample = inputs["sample"].shape
        if len(sample) != 4:
            raise PipelineError(f"{name} input {inputs['sample'].describe()} is not (B, C, h, w)")

    @property
    def batch(self) -> int:
        """UNet batch: 2 for classifier-free guidance in one call, 1 for batch-one models."""
        return int(self.inputs["sample"].shape[0])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one latent."""
        _, c, h, w = self.inputs["sample"].shape
        return int(c), int(h), int(w)

    @property
    def hidden_width(self) -> int:
        """Channels of `encoder_hidden_states` (B, C, 1, S)."""
        return int(self.inputs["encoder_hidden_states"].shape[1])

    @property
    def sequence_length(self) -> int:
        return int(self.inputs["encoder_hidden_states"].shape[-1])

    @property
    def time_ids_width(self) -> int | None:
        """Values per row of `time_ids` (6 base, 5 refiner); the flat (2 * 6,) form counts per row."""
        spec = self.inputs.get("time_ids")
        if spec is None:
            return None
        if len(spec.shape) == 1:
            return int(spec.shape[0]) // self.batch
        return int(spec.shape[-1])

    @property
    def text_embeds_width(self) -> int | None:
        spec = self.inputs.get("text_embeds")
        return None if spec is None else int(spec.shape[-1])

    def make_inputs(
        self,
        sample: np.ndarray,
        timestep: float,
        encoder_hidden_states: np.ndarray,
        text_embeds: np.ndarray,
        time_ids: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The UNet inputs for one call, in the shapes the model declares (cast at `predict`)."""
        values: dict[str, np.ndarray] = {
            "sample": sample,
            "timestep": np.full(self.inputs["timestep"].shape, timestep),
            "encoder_hidden_states": encoder_hidden_states,
            "time_ids": time_ids,
            "text_embeds": text_embeds,
        }
        result = {}
        for name, spec in self.inputs.items():
            value = np.asarray(values[name])
            if value.size != int(np.prod(spec.shape)):
                raise PipelineError(
                    f"{self.name} input {name!r}: pipeline has shape {value.shape}, model expects {spec.describe()}"
                )
            result[name] = value.reshape(spec.shape)
        return result

    def predict(self, models: Sequence[Model], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run the model (or chunk1 then chunk2) and return `noise_pred` as float32."""
        if len(models) != len(self.parts):
            raise PipelineError(f"{self.name}: {len(models)} models for parts {self.parts}")
        available = dict(inputs)
        outputs: dict[str, np.ndarray] = {}
        for model in models:
            outputs = model.predict(conform(model, available))
            available.update(outputs)
        if self.output not in outputs:
            raise PipelineError(f"{self.parts[-1]} returned {sorted(outputs)}; expected {self.output!r}")
        return np.asarray(outputs[self.output], dtype=np.float32)


def _names(specs: Mapping[str, TensorSpec], limit: int = 8) -> str:
    names = sorted(specs)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
