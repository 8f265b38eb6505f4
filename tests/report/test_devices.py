"""Apple identifiers -> marketing names and chips; published device labels -> (line, chip)."""

from __future__ import annotations

import pytest

from bench.report.devices import DEVICES, identify, normalise_chip, parse_published_device, same_device


@pytest.mark.parametrize(("identifier", "name", "chip"), [
    ("iPhone13,3", "iPhone 12 Pro", "A14"), ("iPhone14,3", "iPhone 13 Pro Max", "A15"),
    ("iPhone15,3", "iPhone 14 Pro Max", "A16"), ("iPhone16,2", "iPhone 15 Pro Max", "A17 Pro"),
    ("iPad13,8", "iPad Pro 12.9-inch (5th generation)", "M1"), ("iPad14,5", "iPad Pro 12.9-inch (6th generation)", "M2"),
    ("Mac14,5", "MacBook Pro 14-inch (M2 Max)", "M2 Max"), ("Mac14,14", "Mac Studio (M2 Ultra)", "M2 Ultra"),
])  # fmt: skip
def test_identifier_table(identifier: str, name: str, chip: str) -> None:
    assert (DEVICES[identifier].name, DEVICES[identifier].chip) == (name, chip)


def test_every_published_ios_device_has_an_identifier() -> None:
    from bench.report.published import device_table

    ios = device_table(model="sdxl").query("compute_unit == 'CPU_AND_NE'")
    for device, chip in zip(ios["device"], ios["chip"]):
        line, _ = parse_published_device(device, chip)
        assert any(d.line.lower() == line.lower() and d.chip == chip for d in DEVICES.values()), device


def test_identify_and_chip_text() -> None:
    assert identify("iPhone16,2", None).name == "iPhone 15 Pro Max"
    mac = identify("Mac99,9", "Apple M3 Max")
    assert mac.name is None and mac.chip == "M3 Max"
    assert identify("x86_64", "AMD EPYC").chip is None
    assert normalise_chip("A15 [annotated]") == "A15" and normalise_chip("Apple M2") == "M2"


def test_parse_published_device() -> None:
    assert parse_published_device("iPad Pro (M2)", "M2") == ("iPad Pro", "M2")
    assert parse_published_device("Mac (M1 8 GB)", "M1") == ("Mac", "M1")
    assert parse_published_device("iPhone 13", "A15 [annotated]") == ("iPhone 13", "A15")
    assert parse_published_device("MacBook Pro (M1 Max, 32-core GPU)", "") == ("MacBook Pro", "M1 Max")


def test_same_device() -> None:
    m2_max_mbp = identify("Mac14,5", "Apple M2 Max")
    assert same_device(m2_max_mbp, "MacBook Pro", "M2 Max")
    assert not same_device(m2_max_mbp, "Mac Studio", "M2 Max")
    assert same_device(identify("Mac14,3", "Apple M2"), "Mac", "M2")  # Apple's generic "Mac (M2 24 GB)"
    assert not same_device(identify("Mac14,3", "Apple M2"), "iPad Pro", "M2")
    assert same_device(identify("iPad14,5", None), "iPad Pro", "M2")


def test_identify_from_a_recorded_marketing_name() -> None:
    machine = identify("unknown-product", None, device_name="iPhone 15 Pro Max")
    assert (machine.name, machine.chip) == ("iPhone 15 Pro Max", "A17 Pro")
