"""The SDXL pipeline in numpy, driving models through the engine protocol.

    from bench.pipeline import SDXLPipeline, GenerationRequest
    pipe = SDXLPipeline(model_set, engine, "CPU_AND_NE", recorder=recorder)
    pipe.load(pipe.parts_for(request))
    result = pipe.generate(request)   # result.image: (H, W, 3) uint8
"""

from __future__ import annotations

from bench.errors import PipelineError
from bench.pipeline.request import SCHEDULERS, GenerationRequest
from bench.pipeline.sdxl import GenerationResult, SDXLPipeline
from bench.pipeline.tokenizer import CLIPTokenizer, PromptTruncatedWarning

__all__ = [
    "SCHEDULERS",
    "CLIPTokenizer",
    "GenerationRequest",
    "GenerationResult",
    "PipelineError",
    "PromptTruncatedWarning",
    "SDXLPipeline",
]
