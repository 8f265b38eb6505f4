"""Apple device identifiers -> marketing name and chip, to match a run's machine to published rows.

A run records the machine as `device` (macOS `hw.model` such as `Mac14,5`, or an iOS product type
such as `iPhone16,2` for a remote device run) and `chip` (macOS `machdep.cpu.brand_string`, e.g.
`Apple M2 Max`). Apple's tables name devices by marketing name ("iPhone 15 Pro Max", "iPad Pro (M2)",
"MacBook Pro (M2 Max)"), so matching needs this table. Identifiers are Apple's product types
(Settings > General > About on iOS, System Information on macOS); only devices of the published
tables' generations and the Apple-silicon Macs are listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    """One Apple device model: identifier, marketing name, product line and chip."""

    identifier: str  # e.g. "iPhone16,2", "Mac14,5"
    name: str  # marketing name, e.g. "iPhone 15 Pro Max"
    line: str  # what Apple's tables call it without the chip: "iPhone 15 Pro Max", "iPad Pro", "MacBook Pro"
    chip: str  # e.g. "A17 Pro", "M2", "M2 Max"

    @property
    def kind(self) -> str:
        """"iPhone", "iPad" or "Mac"."""
        return "iPhone" if self.line.startswith("iPhone") else "iPad" if self.line.startswith("iPad") else "Mac"


def _iphones() -> list[Device]:
    table = {
        "iPhone13,1": ("iPhone 12 mini", "A14"), "iPhone13,2": ("iPhone 12", "A14"),
        "iPhone13,3": ("iPhone 12 Pro", "A14"), "iPhone13,4": ("iPhone 12 Pro Max", "A14"),
        "iPhone14,4": ("iPhone 13 mini", "A15"), "iPhone14,5": ("iPhone 13", "A15"),
        "iPhone14,2": ("iPhone 13 Pro", "A15"), "iPhone14,3": ("iPhone 13 Pro Max", "A15"),
        "iPhone14,7": ("iPhone 14", "A15"), "iPhone14,8": ("iPhone 14 Plus", "A15"),
        "iPhone15,2": ("iPhone 14 Pro", "A16"), "iPhone15,3": ("iPhone 14 Pro Max", "A16"),
        "iPhone15,4": ("iPhone 15", "A16"), "iPhone15,5": ("iPhone 15 Plus", "A16"),
        "iPhone16,1": ("iPhone 15 Pro", "A17 Pro"), "iPhone16,2": ("iPhone 15 Pro Max", "A17 Pro"),
    }  # fmt: skip
    return [Device(identifier, name, name, chip) for identifier, (name, chip) in table.items()]


def _ipads() -> list[Device]:
    table = {
        **{f"iPad13,{n}": ("iPad Pro 11-inch (3rd generation)", "M1") for n in (4, 5, 6, 7)},
        **{f"iPad13,{n}": ("iPad Pro 12.9-inch (5th generation)", "M1") for n in (8, 9, 10, 11)},
        **{f"iPad13,{n}": ("iPad Air (5th generation)", "M1") for n in (16, 17)},
        **{f"iPad14,{n}": ("iPad Pro 11-inch (4th generation)", "M2") for n in (3, 4)},
        **{f"iPad14,{n}": ("iPad Pro 12.9-inch (6th generation)", "M2") for n in (5, 6)},
    }  # fmt: skip
    return [Device(i, name, "iPad Air" if "Air" in name else "iPad Pro", chip) for i, (name, chip) in table.items()]


def _macs() -> list[Device]:
    table = {
        "MacBookAir10,1": ("MacBook Air (M1)", "MacBook Air", "M1"),
        "MacBookPro17,1": ("MacBook Pro 13-inch (M1)", "MacBook Pro", "M1"),
        "Macmini9,1": ("Mac mini (M1)", "Mac mini", "M1"),
        "iMac21,1": ("iMac 24-inch (M1)", "iMac", "M1"), "iMac21,2": ("iMac 24-inch (M1)", "iMac", "M1"),
        "MacBookPro18,1": ("MacBook Pro 16-inch (M1 Pro)", "MacBook Pro", "M1 Pro"),
        "MacBookPro18,2": ("MacBook Pro 16-inch (M1 Max)", "MacBook Pro", "M1 Max"),
        "MacBookPro18,3": ("MacBook Pro 14-inch (M1 Pro)", "MacBook Pro", "M1 Pro"),
        "MacBookPro18,4": ("MacBook Pro 14-inch (M1 Max)", "MacBook Pro", "M1 Max"),
        "Mac13,1": ("Mac Studio (M1 Max)", "Mac Studio", "M1 Max"),
        "Mac13,2": ("Mac Studio (M1 Ultra)", "Mac Studio", "M1 Ultra"),
        "Mac14,2": ("MacBook Air 13-inch (M2)", "MacBook Air", "M2"),
        "Mac14,15": ("MacBook Air 15-inch (M2)", "MacBook Air", "M2"),
        "Mac14,7": ("MacBook Pro 13-inch (M2)", "MacBook Pro", "M2"),
        "Mac14,3": ("Mac mini (M2)", "Mac mini", "M2"),
        "Mac14,12": ("Mac mini (M2 Pro)", "Mac mini", "M2 Pro"),
        "Mac14,9": ("MacBook Pro 14-inch (M2 Pro)", "MacBook Pro", "M2 Pro"),
        "Mac14,5": ("MacBook Pro 14-inch (M2 Max)", "MacBook Pro", "M2 Max"),
        "Mac14,10": ("MacBook Pro 16-inch (M2 Pro)", "MacBook Pro", "M2 Pro"),
        "Mac14,6": ("MacBook Pro 16-inch (M2 Max)", "MacBook Pro", "M2 Max"),
        "Mac14,13": ("Mac Studio (M2 Max)", "Mac Studio", "M2 Max"),
        "Mac14,14": ("Mac Studio (M2 Ultra)", "Mac Studio", "M2 Ultra"),
        "Mac14,8": ("Mac Pro (M2 Ultra)", "Mac Pro", "M2 Ultra"),
    }  # fmt: skip
    return [Device(identifier, name, line, chip) for identifier, (name, line, chip) in table.items()]


#: Every known identifier -> its device.
DEVICES: dict[str, Device] = {d.identifier: d for d in (*_iphones(), *_ipads(), *_macs())}

_CHIP = re.compile(r"\b(A1[0-9](?: Pro| Bionic)?|M[1-9](?: Pro| Max| Ultra)?)\b")


def normalise_chip(text: str | None) -> str | None:
    """"Apple M2 Max" -> "M2 Max"; "A15 [annotated]" -> "A15"; "A15 Bionic" -> "A15"; None if no Apple chip."""
    if not text:
        return None
    match = _CHIP.search(str(text))
    return match.group(1).replace(" Bionic", "") if match else None


@dataclass(frozen=True)
class MachineIdentity:
    """What a run's machine is, as far as the recorded `device` and `chip` tell."""

    device: str  # as recorded
    name: str | None  # marketing name, when the identifier is known
    line: str | None
    chip: str | None  # normalised Apple chip, None off Apple silicon


def identify(device: str | None, chip: str | None, device_name: str | None = None) -> MachineIdentity:
    """The machine behind a recorded (device, chip): the identifier table first, then a recorded
    marketing name (`device_name`, results schema 2), then the chip text alone."""
    recorded = "" if device is None else str(device)
    known = DEVICES.get(recorded.strip())
    if known is None and device_name:
        named = [d for d in DEVICES.values() if d.name.lower() == str(device_name).strip().lower()]
        known = named[0] if named else None
    if known is not None:
        return MachineIdentity(recorded, known.name, known.line, known.chip)
    return MachineIdentity(recorded, None, None, normalise_chip(chip))


def parse_published_device(name: str, chip: str | None) -> tuple[str, str | None]:
    """A published device label -> (product line, chip): "iPad Pro (M2)" -> ("iPad Pro", "M2"),
    "Mac (M1 8 GB)" -> ("Mac", "M1"), "iPhone 13" with chip "A15 [annotated]" -> ("iPhone 13", "A15")."""
    line = re.sub(r"\s*\(.*\)\s*$", "", name).strip()
    found = normalise_chip(chip) or normalise_chip(name[len(line):])
    if found is None:
        by_name = [d for d in DEVICES.values() if d.name.lower() == line.lower()]
        found = by_name[0].chip if by_name else None
    return line, found


def same_device(machine: MachineIdentity, line: str, chip: str | None) -> bool:
    """True when a published (line, chip) is this machine's model: same line and chip; Apple's
    generic "Mac (M1 ...)" rows match any Mac with that chip."""
    if machine.chip is None or chip is None or machine.chip != chip:
        return False
    if machine.line is None:
        # A Mac known only by its chip text (an unlisted identifier): a generic "Mac" row still fits.
        return line == "Mac" and not chip.startswith("A")
    return machine.line.lower() == line.lower() or (line == "Mac" and _LINE_KINDS.get(machine.line) == "Mac")


_LINE_KINDS: dict[str, str] = {d.line: d.kind for d in DEVICES.values()}
