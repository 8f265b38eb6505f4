"""`bench devices`: what can run benchmarks from here: this Mac and connected iPhones / iPads."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list this machine and connected iPhones / iPads",
        description="This machine (chip, memory, OS, whether Core ML runs) and every iPhone / iPad that "
        "`xcrun devicectl` sees (name, product type, marketing name, OS, Developer Mode, readiness). "
        "`bench run --device UDID|NAME` runs on a ready one.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.devices import DeviceListError, devices_unsupported_reason, list_devices, this_machine

    host = this_machine()
    unsupported = devices_unsupported_reason()
    devices, error = [], None
    if unsupported is None:
        try:
            devices = [d for d in list_devices() if d.device_type.lower() in ("iphone", "ipad")]
        except DeviceListError as failure:
            error = str(failure)
    if args.json:
        print(json.dumps({"host": asdict(host), "devices": [d.identity() | {"ready": d.not_ready_reason is None,
                                                                             "not_ready_reason": d.not_ready_reason}
                                                            for d in devices],
                          "devices_unavailable": unsupported or error}, indent=2))  # fmt: skip
        return 0
    console = Console()
    table = Table(title="this machine", show_header=False)
    table.add_row("model", host.model)
    table.add_row("chip", host.chip)
    table.add_row("memory", f"{host.memory_bytes / 2**30:.1f} GiB")
    table.add_row("OS", host.os)
    table.add_row("Core ML", "available" if host.coreml_available else f"not available: {host.coreml_reason}")
    console.print(table)
    if unsupported or error:
        console.print(f"iPhones / iPads: {unsupported or error}")
        return 0
    if not devices:
        console.print("iPhones / iPads: none connected (xcrun devicectl list devices sees none)")
        return 0
    listing = Table(title="iPhones / iPads")
    for column in ("name", "product type", "marketing name", "OS", "developer mode", "ready", "udid"):
        listing.add_column(column)
    for d in devices:
        ready = "yes" if d.not_ready_reason is None else f"no: {d.not_ready_reason}"
        os_text = " ".join(x for x in (d.platform, d.os_version, d.os_build) if x)
        listing.add_row(d.name, d.product_type or "?", d.marketing_name, os_text, d.developer_mode or "?", ready, d.udid)
    console.print(listing)
    return 0
