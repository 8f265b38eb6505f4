"""CLIP text encoders (CLIPTextModel, CLIPTextModelWithProjection): the reference engine against torch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from parity_cases import TEXT_ENCODER_CONFIGS, cases

pytestmark = [
    pytest.mark.torch,
    pytest.mark.slow,
    # transformers masks future tokens with float32's most negative value, which the fp16 conversion
    # rounds to -inf: the mask add legitimately holds inf and the engine's fp16 mode warns about it.
    # The outputs after softmax are finite and checked by PSNR.
    pytest.mark.filterwarnings("ignore::bench.engines.reference.precision.NumericsWarning"),
]


@pytest.mark.parametrize(("config", "precision"), cases(TEXT_ENCODER_CONFIGS))
def test_text_encoder_matches_torch(check_parity, config, precision):
    check_parity(config, precision)
