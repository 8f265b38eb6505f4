"""CLIP text encoders (CLIPTextModel, CLIPTextModelWithProjection): the reference engine against torch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from parity_cases import TEXT_ENCODER_CONFIGS, cases  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.mark.parametrize(("config", "precision"), cases(TEXT_ENCODER_CONFIGS))
def test_text_encoder_matches_torch(check_parity, config, precision):
    check_parity(config, precision)
