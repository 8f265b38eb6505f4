"""Cases beside published figures: same device, same chip (said so), other devices listed, none."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from bench.report.matching import match_cases

IOS = {"model": "sdxl-base-ios17", "resolution": 768, "attention": "SPLIT_EINSUM", "quantization": "mbp-4.04",
       "compute_unit": "CPU_AND_NE", "steps": 20}  # fmt: skip
MACOS = {"model": "sdxl-base-macos", "resolution": 1024, "attention": "ORIGINAL", "quantization": "float16",
         "compute_unit": "CPU_AND_GPU", "steps": 20}  # fmt: skip


def case(config: dict[str, Any], device: str, chip: str | None, e2e: float = 40.0, ips: float = 0.5) -> dict[str, Any]:
    return {"run_id": "r", "case_id": device, "case": "c", "status": "ok", **config, "device": device, "chip": chip,
            "end_to_end_s": e2e, "iter_per_s": ips}  # fmt: skip


def test_same_device_from_ios_product_type() -> None:
    (match,) = match_cases(pd.DataFrame([case(IOS, "iPhone16,2", None, e2e=62.0, ips=0.425)]))
    assert match.kind == "device" and [f.device for f in match.figures] == ["iPhone 15 Pro Max"]
    figure = match.figures[0]
    assert figure.ratio_end_to_end == pytest.approx(2.0) and figure.ratio_iter_per_s == pytest.approx(0.5)
    assert figure.date == "Sep 2023" and "SDXL iOS table" in figure.table


def test_same_mac_from_model_identifier_and_chip() -> None:
    (match,) = match_cases(pd.DataFrame([case(MACOS, "Mac14,5", "Apple M2 Max", e2e=37.0)]))
    assert match.kind == "device" and [f.device for f in match.figures] == ["MacBook Pro (M2 Max)"]
    assert match.figures[0].ratio_end_to_end == pytest.approx(1.0)


def test_falls_back_to_same_chip_and_says_so() -> None:
    (match,) = match_cases(pd.DataFrame([case(IOS, "Mac14,7", "Apple M2")]))
    assert match.kind == "chip" and [f.device for f in match.figures] == ["iPad Pro (M2)"]
    assert "same chip (M2)" in match.note and "MacBook Pro 13-inch (M2)" in match.note


def test_unmatched_device_lists_published_devices() -> None:
    (match,) = match_cases(pd.DataFrame([case(IOS, "Mac14,5", "Apple M2 Max")]))
    assert match.kind == "other-devices" and not match.figures
    assert "iPhone 15 Pro Max" in match.reference_devices and "iPad Pro (M2)" in match.note


@pytest.mark.parametrize("change", [{"steps": 30}, {"resolution": 1024}, {"attention": "ORIGINAL"},
                                    {"quantization": "float16"}, {"compute_unit": "CPU_AND_GPU"},
                                    {"model": "tiny-split-einsum-mbp"}])  # fmt: skip
def test_any_config_difference_is_unpublished(change: dict[str, Any]) -> None:
    (match,) = match_cases(pd.DataFrame([case({**IOS, **change}, "iPhone16,2", None)]))
    assert match.kind == "unpublished" and "no published figure" in match.note


def test_failed_case_keeps_its_row_with_nan_ratio() -> None:
    (match,) = match_cases(pd.DataFrame([case(IOS, "iPad14,5", None, e2e=float("nan"), ips=float("nan"))]))
    assert match.kind == "device" and math.isnan(match.figures[0].ratio_end_to_end)


def test_unstated_fields_match_anything_and_are_named() -> None:
    # Hugging Face's Diffusers-app table states neither attention, resolution nor steps
    config = {"model": "coreml-stable-diffusion-2-1-base", "resolution": 512, "attention": "SPLIT_EINSUM",
              "quantization": "float16", "compute_unit": "CPU_AND_NE", "steps": 25}  # fmt: skip
    (match,) = match_cases(pd.DataFrame([case(config, "Mac14,3", "Apple M2", e2e=21.0)]))
    assert match.kind == "device" and [f.device for f in match.figures] == ["Mac (M2 24 GB)"]
    assert match.figures[0].ratio_end_to_end == pytest.approx(2.0)  # 21 / 10.5
    assert "does not state attention, quantization, resolution, steps" in match.note


def test_refiner_cases_are_not_matched_to_base_figures() -> None:
    (match,) = match_cases(pd.DataFrame([{**case(MACOS, "Mac14,5", "Apple M2 Max"), "refiner": True}]))
    assert match.kind == "unpublished"


def test_cases_sharing_a_configuration_get_their_own_ratios() -> None:
    rows = [case(IOS, "iPhone16,2", None, e2e=31.0), case(IOS, "iPhone16,2", None, e2e=62.0)]
    first, second = match_cases(pd.DataFrame(rows))
    assert (first.figures[0].ratio_end_to_end, second.figures[0].ratio_end_to_end) == pytest.approx((1.0, 2.0))
