"""Session fixtures for the torch parity tests: build, convert and cache the oracle modules.

Every (config, precision) pair is converted once per session into a temporary folder; the torch
module of a config is built and traced once and shared by its fp32 and fp16 conversions. The PSNR of every
checked output is collected and printed as a table at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

_PSNR_ROWS: list[tuple[str, str, str, float, float]] = []


@pytest.fixture(scope="session")
def parity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parity")


@pytest.fixture(scope="session")
def converted(parity_dir: Path) -> Callable:
    """`converted(config, precision)` -> `torch_oracles.Converted`, converting at most once.

    Set BENCH_PARITY_CACHE=<folder> to keep conversions across sessions (keyed by the config, the
    oracle code and the library versions); useful while iterating on kernels, off by default.
    """
    import torch_oracles as po

    cache_dir = os.environ.get("BENCH_PARITY_CACHE")
    traced: dict[str, po.Traced] = {}
    cache: dict[tuple[str, str], po.Converted] = {}

    def get(config: po.OracleConfig, precision: str) -> po.Converted:
        key = (config.name, precision)
        if key in cache:
            return cache[key]
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            conv = po.load_from_cache(config, precision, Path(cache_dir))
            if conv is not None:
                cache[key] = conv
                return conv
        if config.name not in traced:
            traced[config.name] = po.trace(config)
        if cache_dir:
            conv = po.convert(traced[config.name], precision, Path(cache_dir), po.cache_stem(config, precision))
            po.save_for_cache(conv)
        else:
            conv = po.convert(traced[config.name], precision, parity_dir)
        cache[key] = conv
        return conv

    return get


@pytest.fixture
def record_psnr(record_property: Callable) -> Callable[[str, str, str, float, float], None]:
    """Record one PSNR figure for the end-of-run table (and the junit xml)."""

    def record(config: str, precision: str, output: str, value: float, threshold: float) -> None:
        _PSNR_ROWS.append((config, precision, output, value, threshold))
        record_property(f"psnr_{output}", value)

    return record


@pytest.fixture
def check_parity(converted: Callable, record_psnr: Callable) -> Callable:
    """`check_parity(config, precision)`: convert, run the engine, require PSNR >= the bar per output."""
    import torch_oracles as po

    def check(config: po.OracleConfig, precision: str) -> None:
        conv = converted(config, precision)
        outputs = po.run_engine(conv)
        threshold = po.MIN_PSNR[precision]
        scores = po.compare(conv, outputs)
        for name, score in scores.items():
            record_psnr(config.name, precision, name, score, threshold)
        low = {name: round(score, 1) for name, score in scores.items() if score < threshold}
        assert not low, (
            f"{config.name} ({precision}, target {config.target}): PSNR below {threshold:.0f} dB "
            f"for {low}; converted model kept at {conv.path}"
        )

    return check


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _PSNR_ROWS:
        return
    terminalreporter.section("reference engine vs torch: PSNR (dB)")
    terminalreporter.write_line(f"{'config':<22} {'precision':<9} {'output':<16} {'psnr':>8} {'min':>6}")
    for name, precision, output, value, threshold in sorted(_PSNR_ROWS):
        flag = "" if value >= threshold else "  FAIL"
        terminalreporter.write_line(f"{name:<22} {precision:<9} {output:<16} {value:8.1f} {threshold:6.0f}{flag}")
