"""Where benchmarks can run: this Mac and connected iPhones / iPads (`bench devices`, `bench run --device`)."""

from bench.devices.devicectl import ConnectedDevice, DeviceListError, find_device, list_devices, parse_devices
from bench.devices.host import HostInfo, devices_unsupported_reason, this_machine

__all__ = [
    "ConnectedDevice",
    "DeviceListError",
    "HostInfo",
    "devices_unsupported_reason",
    "find_device",
    "list_devices",
    "parse_devices",
    "this_machine",
]
