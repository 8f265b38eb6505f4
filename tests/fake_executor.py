"""A fake case plugin for runner tests: real spans, real numpy work, real allocations.

Use it as `bench run --plugin fake_executor:PLUGIN` (tests put this folder on the path).

The model id picks the behaviour, so a suite file can mix good and bad cases:
  fake-ok               behaves
  fake-alloc-<MB>       also allocates <MB> MiB inside vae_decoder
  fake-error            raises PipelineError in the unet at step 1
  fake-crash            the worker process aborts (SIGABRT) in the unet at step 1
  fake-sigkill          the worker process is SIGKILLed in the unet at step 1 (as the OOM killer does)
  fake-exit             the worker calls os._exit(7) in the scheduler
  fake-hang             blocks forever in the unet (the runner's timeout must end it)
  fake-missing          absent: prepare_models refuses it like the zoo refuses an absent real model
  fake-gil-<MB>         raises the lifetime high-water mark in text_encoder (2x<MB> MiB, freed), then
                        allocates and fills <MB> MiB inside vae_decoder in C calls that hold the GIL
                        and frees it before the span ends: no edge reading, no high-water mark and
                        no thread of the worker can see that peak; only sampling from outside can
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np

from bench.errors import ModelNotFoundError, PipelineError
from bench.executor import Generation
from bench.model_prep import PreparedModel
from bench.schema import Measurement, ModelLabels

PARTS = ("text_encoder", "text_encoder_2", "unet", "vae_decoder")


def prepare_models(cases, status=lambda text: None):
    """The fake zoo: every fake model is present except fake-missing."""
    prepared = {}
    for case in cases:
        if case.skip_reason:
            continue  # skipped cases need no model, as in the real prepare_models
        if case.model == "fake-missing":
            raise ModelNotFoundError(
                f"model variant {case.model} is not present; download it with: bench models fetch {case.model}"
            )
        prepared[case.model] = PreparedModel(case.model, "measured")
    return prepared


class FakeExecutor:
    def __init__(self, case, recorder, models=None):
        self.case = case
        self.recorder = recorder
        self.rng = np.random.default_rng(case.seed)
        self.weights = {}

    def prepare(self):
        return ModelLabels(attention="SPLIT_EINSUM", quantization="float16", resolution=64, batch=2)

    def load(self):
        for part in PARTS:
            with self.recorder.span(f"load/{part}"):
                self.weights[part] = self.rng.standard_normal((96, 96)).astype(np.float32)
        for part in PARTS:
            with self.recorder.span(f"first_predict/{part}"):
                self._work(part)

    def _work(self, part, repeats=3):
        x = self.weights[part]
        for _ in range(repeats):
            x = np.tanh(x @ self.weights[part])
        return x

    def _misbehave(self, where):
        model = self.case.model
        if model == "fake-error" and where == "unet":
            raise PipelineError("fake pipeline failed on purpose in the unet")
        if model == "fake-crash" and where == "unet":
            os.abort()
        if model == "fake-sigkill" and where == "unet":
            os.kill(os.getpid(), signal.SIGKILL)
        if model == "fake-exit" and where == "scheduler":
            os._exit(7)
        if model == "fake-hang" and where == "unet":
            threading.Event().wait()

    def generate(self):
        rec = self.recorder
        with rec.span("end_to_end"):
            with rec.span("tokenize"):
                tokens = np.arange(77)
            with rec.span("text_encoder"):
                if self.case.model.startswith("fake-gil-"):
                    block = np.ones(int(self.case.model.rsplit("-", 1)[1]) << 19, dtype=np.float32)  # 2x MiB
                    del block
                self._work("text_encoder")
            with rec.span("text_encoder_2"):
                self._work("text_encoder_2")
            with rec.span("diffusion"):
                for step in range(self.case.steps):
                    with rec.span("unet", step=step):
                        if step == 1:
                            self._misbehave("unet")
                        self._work("unet", repeats=6)
                    with rec.span("scheduler", step=step):
                        self._misbehave("scheduler")
                        tokens = tokens + 1
            with rec.span("vae_decoder"):
                if self.case.model.startswith("fake-alloc-"):
                    megabytes = int(self.case.model.rsplit("-", 1)[1])
                    block = np.ones(megabytes << 18, dtype=np.float32)  # MiB * 2**20 / 4 bytes
                    threading.Event().wait(0.05)  # hold it across several sampler intervals
                    del block
                if self.case.model.startswith("fake-gil-"):
                    _hold_gil_and_allocate(int(self.case.model.rsplit("-", 1)[1]))
                self._work("vae_decoder")
        image = (self.rng.random((8, 8, 3)) * 255).astype(np.uint8)
        return Generation(unet_calls=self.case.steps, image=image)

    def quality(self):
        return [Measurement("unet", "psnr", 42.0 + self.case.seed, "dB")]

    def close(self):
        self.weights.clear()


def _hold_gil_and_allocate(megabytes):
    """C-level calls that hold the GIL while they allocate and fill `megabytes` MiB, like a Core ML
    predict: no Python thread of this process runs meanwhile.

    `b"x" * n` memsets every byte inside one call (so the pages are resident); each `count`
    scans the whole block in one more call, keeping it resident over many sampling intervals.
    """
    block = b"\x01" * (megabytes << 20)
    for _ in range(2):
        block.count(b"\x02\x03")
    del block


class FakePlugin:
    """The fake plugin: fake zoo + FakeExecutor."""

    def prepare_models(self, cases, status=lambda text: None):
        return prepare_models(cases, status)

    def create_executor(self, case, recorder, models):
        return FakeExecutor(case, recorder, models)


PLUGIN = FakePlugin()
