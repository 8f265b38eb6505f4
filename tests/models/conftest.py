"""Generated models shared by the model-zoo tests: built once into `bench.models.testing`'s folder
(`$BENCH_MODELS_DIR` when set), reused by later runs and by other test modules."""

from __future__ import annotations

import pytest

#: The variants these tests need (a subset of the default set, so a cold build stays short).
TEST_IDS = (
    "tiny-original-fp32",
    "tiny-split-einsum-fp32",
    "tiny-split-einsum-v2-fp32",
    "tiny-split-einsum-fp16",
    "tiny-split-einsum-int8",
    "tiny-split-einsum-pal6",
    "tiny-split-einsum-pal4",
    "tiny-split-einsum-mbp",
    "tiny-split-einsum-fp16-chunked",
    "tiny-split-einsum-mbp-chunked",
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """id -> variant folder of `TEST_IDS`, with `BENCH_MODELS_DIR` pointing at their models folder."""
    from bench.models.testing import use_tiny_models_dir
    from bench.models.tiny import ensure_built

    use_tiny_models_dir()
    return ensure_built(TEST_IDS)


@pytest.fixture()
def model_set(tiny_models):
    from bench.models import zoo

    return lambda variant_id: zoo.resolve(variant_id, build_tiny=False)
