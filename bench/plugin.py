"""The case plugin contract: how the harness prepares a case's models and measures the case.

A plugin has two halves that run in different processes:

- `prepare_models(cases, status)` runs once in the runner, before any case: it makes the models
  present (or refuses the run, naming what is missing) and returns a `PreparedModel` per model id.
- `create_executor(case, recorder, models)` runs in each case's worker process and returns the
  `CaseExecutor` the worker drives (prepare, load, generate, quality, close), with the model sets
  the runner resolved.

The harness's own plugin, `PipelinePlugin` (spec `bench.plugin:PIPELINE`), prepares zoo models and
runs the SDXL pipeline; tests plug in fakes by spec (`module:attribute`) through the same contract.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bench.errors import BenchError
from bench.executor import CaseExecutor, PipelineExecutor
from bench.measure.recorder import Recorder
from bench.model_prep import PreparedModel, StatusCallback, prepare_models
from bench.models.variant import ResolvedModels
from bench.suite.case import Case

DEFAULT_PLUGIN = "bench.plugin:PIPELINE"


@runtime_checkable
class CasePlugin(Protocol):
    def prepare_models(self, cases: Sequence[Case], status: StatusCallback) -> dict[str, PreparedModel]: ...

    def create_executor(self, case: Case, recorder: Recorder, models: ResolvedModels) -> CaseExecutor: ...


class PipelinePlugin:
    """Zoo models (generated, downloaded or a local folder) run through `SDXLPipeline`."""

    def prepare_models(self, cases: Sequence[Case], status: StatusCallback) -> dict[str, PreparedModel]:
        return prepare_models(cases, status)

    def create_executor(self, case: Case, recorder: Recorder, models: ResolvedModels) -> CaseExecutor:
        return PipelineExecutor(case, recorder, models)


PIPELINE = PipelinePlugin()


def load_plugin(spec: str) -> CasePlugin:
    """`module:attribute` -> the plugin object; BenchError naming the spec when it is not one."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise BenchError(f"bad plugin {spec!r}: expected module:attribute")
    try:
        plugin = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise BenchError(f"cannot load plugin {spec!r}: {error}") from None
    if not isinstance(plugin, CasePlugin):
        raise BenchError(f"plugin {spec!r} has no prepare_models and create_executor")
    return plugin
