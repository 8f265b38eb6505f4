"""AutoencoderKL decoders (post_quant_conv + decoder): the reference engine against torch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from parity_cases import VAE_DECODER_CONFIGS, cases

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.mark.parametrize(("config", "precision"), cases(VAE_DECODER_CONFIGS))
def test_vae_decoder_matches_torch(check_parity, config, precision):
    check_parity(config, precision)
