"""SDXL-style UNets (text_time add-embedding): the reference engine against torch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from parity_cases import UNET_CONFIGS, cases

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.mark.parametrize(("config", "precision"), cases(UNET_CONFIGS))
def test_unet_matches_torch(check_parity, config, precision):
    check_parity(config, precision)
