"""Parsing `devicectl list devices` JSON, cross-checked against coremltools' own parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.cli import main
from bench.devices import DeviceListError, find_device, list_devices, parse_devices
from bench.errors import BenchError
from tests.devices.devicectl_samples import list_devices_document, without_udid_document


def test_devices_are_parsed_with_product_type_marketing_name_os_and_state():
    devices = {d.name: d for d in parse_devices(list_devices_document())}
    phone = devices["Lab iPhone"]
    assert (phone.product_type, phone.marketing_name, phone.chip) == ("iPhone16,2", "iPhone 15 Pro Max", "A17 Pro")
    assert (phone.os_version, phone.os_build, phone.developer_mode) == ("17.0.2", "21A350", "enabled")
    assert phone.not_ready_reason is None and phone.published_name == "iPhone 15 Pro Max"
    ipad = devices["Bench iPad"]  # no marketingName in the JSON: the product table names it
    assert ipad.marketing_name == "iPad Pro (12.9-inch) (6th generation)" and ipad.published_name == "iPad Pro (M2)"
    assert "tunnelState unavailable" in devices["Drawer iPhone"].not_ready_reason
    assert "Developer Mode is disabled" in devices["New iPhone"].not_ready_reason
    assert devices["Build Mac"].device_type == "Mac"


def test_the_samples_parse_the_same_in_coremltools_remote_device(monkeypatch):
    """coremltools' _DeviceCtl.get_devices reads the same documents: same devices, same states."""
    from coremltools.models.ml_program.experimental import remote_device as rd

    for document in (list_devices_document(), without_udid_document()):
        monkeypatch.setattr(rd._DeviceCtl, "_run_command", staticmethod(lambda command, d=document: d))
        theirs = {d.udid: d for d in rd.Device.get_devices()}
        ours = {d.udid: d for d in parse_devices(document)}
        assert set(theirs) == set(ours)
        for udid, device in ours.items():
            assert theirs[udid].name == device.name and theirs[udid].os_build_number == device.os_build
            assert (theirs[udid].state == rd.DeviceState.CONNECTED) == (device.tunnel_state == "connected")
    connected = rd.Device.get_connected_devices(rd.DeviceType.IPHONE)
    assert {d.name for d in connected} == {"New iPhone"}  # Lab iPhone lost its udid in this document


def test_malformed_documents_are_clear_errors():
    with pytest.raises(DeviceListError, match="no result.devices"):
        parse_devices({"info": {"outcome": "failed"}})
    data = list_devices_document()
    data["result"]["devices"][0]["deviceProperties"] = ["not", "an", "object"]
    with pytest.raises(DeviceListError, match="deviceProperties of device 6F1F7A2C"):
        parse_devices(data)


def test_list_devices_runs_devicectl_with_a_json_output_file():
    seen = []

    def run(command, **kwargs):
        seen.append(command)
        Path(command[-1]).write_text(json.dumps(list_devices_document()))
        return subprocess.CompletedProcess(command, 0, "", "")

    assert len(list_devices(run=run)) == 5
    assert seen[0][:5] == ["xcrun", "devicectl", "list", "devices", "--json-output"]

    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Xcode is not installed\n")

    with pytest.raises(DeviceListError, match="exited 1: ERROR: Xcode is not installed"):
        list_devices(run=failing)


def test_find_device_by_udid_identifier_or_name():
    devices = parse_devices(list_devices_document())
    assert find_device(devices, "lab iphone").udid == "00008130-001A2B3C4D5E001C"
    assert find_device(devices, "00008103-000A1B2C3D4E001E").name == "Bench iPad"
    with pytest.raises(BenchError, match="no such device; devicectl sees: Lab iPhone"):
        find_device(devices, "Pixel")


def test_bench_devices_off_macos_says_none_can(capsys, monkeypatch):
    from bench.devices import host

    monkeypatch.setattr(host.platform, "system", lambda: "Linux")
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "Core ML" in out and "none can run benchmarks from here" in " ".join(out.split())


def test_bench_devices_on_a_mac_lists_iphones_and_ipads(capsys, monkeypatch):
    from bench import devices
    from bench.devices import host

    monkeypatch.setenv("COLUMNS", "300")  # rich: one line per device
    monkeypatch.setattr(host.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(devices, "list_devices", lambda: parse_devices(list_devices_document()))
    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["product_type"] for d in listed["devices"]] == ["iPhone16,2", "iPad14,5", "iPhone14,3", "iPhone15,3"]
    assert [d["ready"] for d in listed["devices"]] == [True, True, False, False]
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "iPhone 15 Pro Max" in out and "21A350" in out and "Build Mac" not in out
