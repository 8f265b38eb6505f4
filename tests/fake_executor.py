"""A fake case executor for runner tests: real spans, real numpy work, real allocations.

The model id picks the behaviour, so a suite file can mix good and bad cases:
  fake-ok               behaves
  fake-alloc-<MB>       also allocates <MB> MiB inside vae_decoder
  fake-error            raises PipelineError in the unet at step 1
  fake-crash            the worker process aborts (SIGABRT) in the unet at step 1
  fake-sigkill          the worker process is SIGKILLed in the unet at step 1 (as the OOM killer does)
  fake-exit             the worker calls os._exit(7) in the scheduler
  fake-hang             blocks forever in the unet (the runner's timeout must end it)
  fake-missing          absent: prepare_models refuses it like the zoo refuses an absent real model
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np

from bench.case_exec import CaseMeta, Generation, QualityMeasurement
from bench.errors import ModelNotFoundError, PipelineError

PARTS = ("text_encoder", "text_encoder_2", "unet", "vae_decoder")


def prepare_models(cases, status=lambda text: None):
    """The fake zoo: every fake model is present except fake-missing."""
    info = {}
    for case in cases:
        if case.skip_reason:
            continue  # skipped cases need no model, as in the real prepare_models
        if case.model == "fake-missing":
            raise ModelNotFoundError(
                f"model variant {case.model} is not present; download it with: bench models fetch {case.model}"
            )
        info[case.model] = {"id": case.model, "files": {}}
    return info


class FakeExecutor:
    def __init__(self, case, recorder, **resolved):
        self.case = case
        self.recorder = recorder
        self.rng = np.random.default_rng(case.seed)
        self.weights = {}

    def prepare(self):
        return CaseMeta(attention="SPLIT_EINSUM", quantization="float16", resolution=64, batch=2)

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
                self._work("vae_decoder")
        image = (self.rng.random((8, 8, 3)) * 255).astype(np.uint8)
        return Generation(unet_calls=self.case.steps, image=image)

    def quality(self):
        return [QualityMeasurement("unet", "psnr", 42.0 + self.case.seed, "dB", "fake")]

    def close(self):
        self.weights.clear()
