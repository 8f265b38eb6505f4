"""Where benchmarks can run: this Mac and connected iPhones / iPads (`bench devices`, `bench run --device`).

The devicectl parsing and the product table live with the Core ML engine (`bench.engines.coreml_devices`,
`bench.engines.apple_products`), which needs them to find a device; this package puts them together
with the host's own description for the command and the run's manifest.
"""

from bench.devices.host import HostInfo, devices_unsupported_reason, remote_device_environment, this_machine
from bench.engines.coreml_devices import ConnectedDevice, DeviceListError, find_device, list_devices, parse_devices

__all__ = [
    "ConnectedDevice",
    "DeviceListError",
    "HostInfo",
    "devices_unsupported_reason",
    "find_device",
    "list_devices",
    "parse_devices",
    "remote_device_environment",
    "this_machine",
]
