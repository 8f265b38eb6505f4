"""The example results tree: a real smoke run of the tiny models, shipped under examples/results."""

from __future__ import annotations

import pytest

from tests.report.example_data import EXAMPLE_RESULTS


@pytest.fixture(scope="session")
def example_results():  # noqa: ANN201 - a pandas DataFrame
    import bench

    return bench.load_results(EXAMPLE_RESULTS)
