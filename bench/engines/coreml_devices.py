"""Connected iPhones and iPads from `xcrun devicectl list devices --json-output FILE` (Xcode 15+).

The JSON is `{"info": {...}, "result": {"devices": [{"identifier", "connectionProperties",
"deviceProperties", "hardwareProperties", ...}]}}`. The fields read here are the ones coremltools'
`remote_device._DeviceCtl.get_devices` reads (identifier, udid, name, deviceType, osVersionNumber,
osBuildUpdate, developerModeStatus, tunnelState; entries without identifier, udid, name or a known
type are skipped, as there), plus `productType` and `marketingName`, which coremltools drops.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.engines.apple_products import product, published_device_name
from bench.errors import BenchError

#: deviceType values coremltools' DeviceType knows (lower-cased there).
KNOWN_TYPES = ("iphone", "ipad", "mac", "appletv", "applewatch", "homepod")


class DeviceListError(BenchError):
    """devicectl is missing, failed, or printed JSON this parser does not understand."""


@dataclass(frozen=True)
class ConnectedDevice:
    """One device devicectl knows about, and whether coremltools' remote device can use it now."""

    identifier: str  # CoreDevice identifier (what `devicectl -d` takes)
    udid: str
    name: str
    device_type: str  # iPhone, iPad, ...
    product_type: str | None  # e.g. iPhone16,2
    marketing_name: str  # e.g. iPhone 15 Pro Max (the product type when unknown)
    chip: str | None
    platform: str | None  # iOS, iPadOS as devicectl says
    os_version: str | None
    os_build: str | None
    developer_mode: str | None  # enabled / disabled
    tunnel_state: str | None  # connected / disconnected / unavailable / connecting
    pairing_state: str | None

    @property
    def not_ready_reason(self) -> str | None:
        """Why a benchmark cannot run on it now (None: ready). coremltools requires tunnelState connected."""
        if self.pairing_state not in (None, "paired"):
            return f"not paired with this Mac (pairingState {self.pairing_state}); pair it in Xcode's Devices window"
        if self.tunnel_state != "connected":
            return (f"not connected (tunnelState {self.tunnel_state or 'absent'}); unlock it, keep it on USB or "
                    "the same network, and trust this Mac")  # fmt: skip
        if self.developer_mode != "enabled":
            return f"Developer Mode is {self.developer_mode or 'unknown'}; enable it in Settings > Privacy & Security"
        return None

    @property
    def published_name(self) -> str:
        return published_device_name(self.marketing_name, self.chip)

    def matches(self, selector: str) -> bool:
        """`--device` accepts the UDID, the CoreDevice identifier or the device name (case-insensitive)."""
        wanted = selector.strip().lower()
        return wanted in (self.udid.lower(), self.identifier.lower(), self.name.lower())

    def identity(self) -> dict[str, Any]:
        """What the manifest and rows say about the device (no secrets, no pairing data)."""
        data = asdict(self)
        data["published_name"] = self.published_name
        return data


def parse_devices(data: Mapping[str, Any], source: str = "devicectl output") -> list[ConnectedDevice]:
    """Devices of a `devicectl list devices` JSON document."""
    result = data.get("result") if isinstance(data, Mapping) else None
    devices = result.get("devices") if isinstance(result, Mapping) else None
    if not isinstance(devices, list):
        raise DeviceListError(f"{source}: no result.devices list (is this `devicectl list devices` JSON?)")
    parsed = []
    for entry in devices:
        if not isinstance(entry, Mapping):
            raise DeviceListError(f"{source}: a device entry is {type(entry).__name__}, not an object")
        props = _section(entry, "deviceProperties", source)
        hardware = _section(entry, "hardwareProperties", source)
        connection = _section(entry, "connectionProperties", source)
        identifier, udid, name = entry.get("identifier") or "", hardware.get("udid") or "", props.get("name") or ""
        device_type = str(hardware.get("deviceType") or "")
        if not identifier or not udid or not name or device_type.lower() not in KNOWN_TYPES:
            continue  # coremltools skips these too
        product_type = hardware.get("productType")
        known = product(product_type)
        marketing = hardware.get("marketingName") or (known.marketing_name if known else None) or product_type or device_type
        parsed.append(ConnectedDevice(
            identifier=identifier, udid=udid, name=name, device_type=device_type, product_type=product_type,
            marketing_name=str(marketing).rstrip('"'), chip=known.chip if known else None,
            platform=hardware.get("platform"), os_version=props.get("osVersionNumber"),
            os_build=props.get("osBuildUpdate"), developer_mode=props.get("developerModeStatus"),
            tunnel_state=connection.get("tunnelState"), pairing_state=connection.get("pairingState"),
        ))  # fmt: skip
    return parsed


def _section(entry: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = entry.get(key, {})
    if not isinstance(value, Mapping):
        raise DeviceListError(f"{source}: {key} of device {entry.get('identifier', '?')} is not an object")
    return value


Runner = Callable[..., subprocess.CompletedProcess]


def list_devices(run: Runner = subprocess.run, timeout: float = 30.0) -> list[ConnectedDevice]:
    """iPhones, iPads (and other devices) devicectl sees from this Mac."""
    if shutil.which("xcrun") is None and run is subprocess.run:
        raise DeviceListError("xcrun is not installed: install Xcode (devicectl ships with Xcode 15 and later)")
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "devices.json"
        command = ["xcrun", "devicectl", "list", "devices", "--json-output", str(output)]
        try:
            done = run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            raise DeviceListError(f"{' '.join(command[:4])} failed: {error}") from None
        if done.returncode != 0 or not output.exists():
            message = (done.stderr or done.stdout or "").strip().splitlines()
            raise DeviceListError(f"{' '.join(command[:4])} exited {done.returncode}: {message[-1] if message else 'no output'}")
        try:
            data = json.loads(output.read_text(encoding="utf-8"))
        except ValueError as error:
            raise DeviceListError(f"{' '.join(command[:4])} wrote invalid JSON ({error})") from None
    return parse_devices(data, "xcrun devicectl list devices")


def find_device(devices: list[ConnectedDevice], selector: str) -> ConnectedDevice:
    """The one device `selector` names, or a BenchError listing what is there."""
    found = [d for d in devices if d.matches(selector)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{d.name} ({d.udid})" for d in devices) or "none"
    if not found:
        raise BenchError(f"--device {selector!r}: no such device; devicectl sees: {known}")
    raise BenchError(f"--device {selector!r} names {len(found)} devices; use the UDID. devicectl sees: {known}")
