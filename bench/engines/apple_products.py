"""Apple product types (`iPhone16,2`) -> marketing name and chip, for iPhones and iPads.

devicectl reports `hardwareProperties.productType` always and `marketingName` only with recent Xcode
releases and paired devices; coremltools' `Device` keeps neither. This table names a device where
devicectl does not, and gives its chip, which Apple's published tables use to tell iPad Pros apart
("iPad Pro (M2)"). Unknown product types keep their raw identifier. Hand-kept: Apple publishes no
machine-readable list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    marketing_name: str
    chip: str


def _many(types: str, name: str, chip: str) -> dict[str, Product]:
    return {t.strip(): Product(name, chip) for t in types.split()}


PRODUCTS: dict[str, Product] = {
    **_many("iPhone12,1", "iPhone 11", "A13 Bionic"),
    **_many("iPhone12,3", "iPhone 11 Pro", "A13 Bionic"),
    **_many("iPhone12,5", "iPhone 11 Pro Max", "A13 Bionic"),
    **_many("iPhone12,8", "iPhone SE (2nd generation)", "A13 Bionic"),
    **_many("iPhone13,1", "iPhone 12 mini", "A14 Bionic"),
    **_many("iPhone13,2", "iPhone 12", "A14 Bionic"),
    **_many("iPhone13,3", "iPhone 12 Pro", "A14 Bionic"),
    **_many("iPhone13,4", "iPhone 12 Pro Max", "A14 Bionic"),
    **_many("iPhone14,4", "iPhone 13 mini", "A15 Bionic"),
    **_many("iPhone14,5", "iPhone 13", "A15 Bionic"),
    **_many("iPhone14,2", "iPhone 13 Pro", "A15 Bionic"),
    **_many("iPhone14,3", "iPhone 13 Pro Max", "A15 Bionic"),
    **_many("iPhone14,6", "iPhone SE (3rd generation)", "A15 Bionic"),
    **_many("iPhone14,7", "iPhone 14", "A15 Bionic"),
    **_many("iPhone14,8", "iPhone 14 Plus", "A15 Bionic"),
    **_many("iPhone15,2", "iPhone 14 Pro", "A16 Bionic"),
    **_many("iPhone15,3", "iPhone 14 Pro Max", "A16 Bionic"),
    **_many("iPhone15,4", "iPhone 15", "A16 Bionic"),
    **_many("iPhone15,5", "iPhone 15 Plus", "A16 Bionic"),
    **_many("iPhone16,1", "iPhone 15 Pro", "A17 Pro"),
    **_many("iPhone16,2", "iPhone 15 Pro Max", "A17 Pro"),
    **_many("iPhone17,1", "iPhone 16 Pro", "A18 Pro"),
    **_many("iPhone17,2", "iPhone 16 Pro Max", "A18 Pro"),
    **_many("iPhone17,3", "iPhone 16", "A18"),
    **_many("iPhone17,4", "iPhone 16 Plus", "A18"),
    **_many("iPhone17,5", "iPhone 16e", "A18"),
    **_many("iPhone18,1", "iPhone 17 Pro", "A19 Pro"),
    **_many("iPhone18,2", "iPhone 17 Pro Max", "A19 Pro"),
    **_many("iPhone18,3", "iPhone 17", "A19"),
    **_many("iPhone18,4", "iPhone Air", "A19 Pro"),
    **_many("iPad13,1 iPad13,2", "iPad Air (4th generation)", "A14 Bionic"),
    **_many("iPad13,4 iPad13,5 iPad13,6 iPad13,7", "iPad Pro (11-inch) (3rd generation)", "M1"),
    **_many("iPad13,8 iPad13,9 iPad13,10 iPad13,11", "iPad Pro (12.9-inch) (5th generation)", "M1"),
    **_many("iPad13,16 iPad13,17", "iPad Air (5th generation)", "M1"),
    **_many("iPad13,18 iPad13,19", "iPad (10th generation)", "A14 Bionic"),
    **_many("iPad14,1 iPad14,2", "iPad mini (6th generation)", "A15 Bionic"),
    **_many("iPad14,3 iPad14,4", "iPad Pro (11-inch) (4th generation)", "M2"),
    **_many("iPad14,5 iPad14,6", "iPad Pro (12.9-inch) (6th generation)", "M2"),
    **_many("iPad14,8 iPad14,9", "iPad Air 11-inch (M2)", "M2"),
    **_many("iPad14,10 iPad14,11", "iPad Air 13-inch (M2)", "M2"),
    **_many("iPad16,3 iPad16,4", "iPad Pro 11-inch (M4)", "M4"),
    **_many("iPad16,5 iPad16,6", "iPad Pro 13-inch (M4)", "M4"),
}


def product(product_type: str | None) -> Product | None:
    return PRODUCTS.get(product_type or "")


def published_device_name(marketing_name: str, chip: str | None) -> str:
    """The name Apple's published tables use: the marketing name, but "iPad Pro (M2)" for iPad Pros."""
    if marketing_name.startswith("iPad Pro") and chip:
        return f"iPad Pro ({chip})"
    return marketing_name
