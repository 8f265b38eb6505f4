"""`xcrun devicectl list devices --json-output FILE` documents in devicectl's own format (Xcode 15/16).

Field names, nesting and values follow devicectl's output as public parsers record it (Flutter's
core_devices tests, coremltools' remote_device parser): `info` header, `result.devices[]` with
`capabilities`, `connectionProperties` (pairingState, tunnelState, transportType),
`deviceProperties` (name, osVersionNumber, osBuildUpdate, developerModeStatus, bootState),
`hardwareProperties` (deviceType, marketingName, productType, platform, udid, ...), `identifier`.
"""

from __future__ import annotations

import copy


def _device(identifier, udid, name, device_type, product_type, marketing, platform, os_version, build,
            developer_mode="enabled", tunnel="connected", pairing="paired"):
    hardware = {
        "cpuType": {"name": "arm64e", "subType": 2, "type": 16777228},
        "deviceType": device_type,
        "ecid": 12345678903408542,
        "hardwareModel": "D84AP",
        "platform": platform,
        "productType": product_type,
        "reality": "physical",
        "serialNumber": "HC123DHCQV",
        "supportedCPUTypes": [{"name": "arm64e", "subType": 2, "type": 16777228}],
        "supportedDeviceFamilies": [1, 2],
        "thinningProductType": product_type,
        "udid": udid,
    }
    if marketing is not None:
        hardware["marketingName"] = marketing
    connection = {"authenticationType": "manualPairing", "isMobileDeviceOnly": False,
                  "lastConnectionDate": "2025-06-15T15:29:00.082Z", "pairingState": pairing,
                  "potentialHostnames": [f"{udid}.coredevice.local"], "transportType": "wired"}  # fmt: skip
    if tunnel is not None:
        connection["tunnelState"] = tunnel
        connection["tunnelTransportProtocol"] = "tcp"
    return {
        "capabilities": [{"featureIdentifier": "com.apple.coredevice.feature.launchapplication",
                          "name": "Launch Application"}],
        "connectionProperties": connection,
        "deviceProperties": {"bootState": "booted", "ddiServicesAvailable": True,
                             "developerModeStatus": developer_mode, "hasInternalOSBuild": False, "name": name,
                             "osBuildUpdate": build, "osVersionNumber": os_version,
                             "rootFileSystemIsWritable": False},
        "hardwareProperties": hardware,
        "identifier": identifier,
        "visibilityClass": "default",
    }  # fmt: skip


LIST_DEVICES = {
    "info": {
        "arguments": ["devicectl", "list", "devices", "--json-output", "devices.json"],
        "commandType": "devicectl.list.devices",
        "environment": {"TERM": "xterm-256color"},
        "jsonVersion": 2,
        "outcome": "success",
        "version": "397.28",
    },
    "result": {
        "devices": [
            _device("6F1F7A2C-2E5B-4B7D-9B2B-2D3C4E5F6A7B", "00008130-001A2B3C4D5E001C", "Lab iPhone",
                    "iPhone", "iPhone16,2", "iPhone 15 Pro Max", "iOS", "17.0.2", "21A350"),
            # Older Xcode: no marketingName; the product table names it.
            _device("0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", "00008103-000A1B2C3D4E001E", "Bench iPad",
                    "iPad", "iPad14,5", None, "iOS", "17.6.1", "21G93"),
            # Locked / out of reach: devicectl knows it but has no tunnel.
            _device("11111111-2222-4333-8444-555555555555", "00008110-0011223344556677", "Drawer iPhone",
                    "iPhone", "iPhone14,3", "iPhone 13 Pro Max", "iOS", "16.7.2", "20H115", tunnel="unavailable"),
            # Connected, but Developer Mode is off.
            _device("22222222-3333-4444-8555-666666666666", "00008120-0022334455667788", "New iPhone",
                    "iPhone", "iPhone15,3", "iPhone 14 Pro Max", "iOS", "17.1", "21B80", developer_mode="disabled"),
            # A Mac devicectl lists too (not an iPhone / iPad).
            _device("33333333-4444-4555-8666-777777777777", "00006000-001122334455801E", "Build Mac",
                    "Mac", "Mac14,6", "MacBook Pro", "macOS", "14.5", "23F79"),
        ]
    },
}


def list_devices_document():
    return copy.deepcopy(LIST_DEVICES)


def without_udid_document():
    """An entry with no udid: coremltools skips such entries, and so does bench."""
    data = list_devices_document()
    del data["result"]["devices"][0]["hardwareProperties"]["udid"]
    return data
