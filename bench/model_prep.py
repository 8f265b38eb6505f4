"""Model preparation (runner side): every model the cases need is present before any case runs.

Tiny models are generated on first use; an absent real model stops the run here with the zoo's
ModelNotFoundError, which names the variant and the `bench models fetch` command. What is prepared
is described for manifest.json (`PreparedModel`) and handed to the workers as resolved model sets,
so workers never import the zoo or rebuild anything.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.models.variant import ModelSet, ResolvedModels
from bench.suite.case import Case

StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class PreparedModel:
    """One prepared model: what the manifest records and what the workers are handed."""

    id: str
    role: str  # "measured" or "quality baseline"
    model_set: ModelSet | None = None  # None for plugins whose models are not zoo model sets
    quality_baseline: str | None = None  # the id of this model's quality baseline, if any
    sha256: dict[str, str] = field(default_factory=dict)  # file key -> hash of its files

    def to_manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "role": self.role, "quality_baseline": self.quality_baseline}
        if self.model_set is not None:
            entry.update(root=str(self.model_set.root), resolution=self.model_set.resolution,
                         attention=self.model_set.attention, quantization=self.model_set.quantization)  # fmt: skip
        entry["sha256"] = self.sha256
        return entry


def resolved_for(case: Case, prepared: dict[str, PreparedModel]) -> ResolvedModels:
    """The resolved model sets of `case` from what `prepare_models` returned."""
    own = prepared.get(case.model)
    baseline = prepared.get(own.quality_baseline) if own and own.quality_baseline and case.quality else None
    return ResolvedModels(own.model_set if own else None, baseline.model_set if baseline else None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow library chatter on stdout/stderr (progress bars, version warnings)."""
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def prepare_models(cases: Sequence[Case], status: StatusCallback = lambda text: None) -> dict[str, PreparedModel]:
    """Resolve (and generate or check) every model the runnable cases need, keyed by model id."""
    from bench.hashing import model_file_hashes
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
    prepared: dict[str, PreparedModel] = {}
    for model in sorted([*wanted, *baselines], key=generated):
        if generated(model) and not zoo.is_present(model):
            status(f"generating model {model} (first use)")
        with _quiet():  # coremltools' progress bars and warnings while generating; errors still raise
            model_set = zoo.resolve(model, build_tiny=True)
        status(f"hashing model files of {model}")
        prepared[model] = PreparedModel(
            id=model_set.id,
            role="quality baseline" if model in baselines else "measured",
            model_set=model_set,
            quality_baseline=zoo.quality_baseline(model) if model in wanted else None,
            sha256=model_file_hashes(model_set.files),
        )
    return prepared
