"""The ``twinplane`` command line, run as a real process against a real ``twinplane edge``.

A module fixture starts ``twinplane edge`` as a subprocess on a free loopback port and waits for
``/healthz``; each test runs ``python -m twinplane.cli ...`` and checks what it prints. Reported
values come in over the DMI Unix socket (a synchronous gRPC client, as a mapper would send them).
Each test works in its own namespace, so the order of the tests does not matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from dmi_helpers import register_request, report_request
from edge_helpers import EdgeProcess, edge_process, free_port, samples, thermo_model
from twinplane.cli import main
from twinplane.dmi.v1beta1 import api_pb2_grpc
from twinplane.rest.guard import CLIENT_HEADER


def thermo(ns: str) -> str:
    """``thermo-model`` and its Device ``thermo-1`` in namespace ``ns``."""
    return "---\n".join(
        [
            thermo_model("temperature", "setpoint", namespace=ns),
            f"""\
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: thermo-1, namespace: {ns}}}
spec:
  deviceModelRef: {{name: thermo-model}}
  nodeName: edge-a
  protocol: {{protocolName: modbus, configData: {{ip: 127.0.0.1, port: 5020}}}}
  properties:
  - name: temperature
    collectCycle: 2000
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: 0}}}}
  - name: setpoint
    desired: {{value: "21"}}
    visitors: {{protocolName: modbus, configData: {{register: HoldingRegister, offset: 1}}}}
""",
        ]
    )


def cli(
    server: EdgeProcess | None, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``twinplane ARGS`` (``$TWINPLANE_SERVER`` pointing at ``server``)."""
    env = {**os.environ, "TWINPLANE_SERVER": server.url if server else "http://127.0.0.1:9"}
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "twinplane.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(server: EdgeProcess, *args: str, stdin: str | None = None) -> str:
    """Runs a command that must succeed; its stdout."""
    done = cli(server, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def failed(server: EdgeProcess | None, *args: str, stdin: str | None = None) -> list[str]:
    """Runs a command that must fail with status 1; its stderr lines (never a traceback)."""
    done = cli(server, *args, stdin=stdin)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr.splitlines()


def report(server: EdgeProcess, namespace: str, device: str, **values: str) -> None:
    """ReportDeviceStatus over the DMI socket."""
    request = report_request(device, values, namespace=namespace)
    with grpc.insecure_channel(server.target) as channel:
        api_pb2_grpc.DeviceManagerServiceStub(channel).ReportDeviceStatus(request, timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[EdgeProcess]:
    """``twinplane edge`` in a subprocess; it must stop with status 0 on SIGTERM."""
    with edge_process("--log-level", "warning") as process:
        process.start()
        yield process
        assert process.terminate() == 0, process.output()


# -- apply -----------------------------------------------------------------------------------------


def test_apply_samples_prints_kubectl_lines_and_warnings(server: EdgeProcess) -> None:
    """``apply -f model -f instance`` prints one line per object, the quirks as warnings."""
    model, instance = samples() / "onvifdevice-model.yaml", samples() / "onvifdevice-instance.yaml"
    done = cli(server, "apply", "-f", str(model), "-f", str(instance))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "devicemodel.devices.kubeedge.io/default/onvif-model created",
        "device.devices.kubeedge.io/default/onvif-device-01 created",
    ]
    warning = (
        f"Warning: {instance}: doc 0 Device default/onvif-device-01: "
        "spec.properties[0].reportCycle: 10000000000 looks like nanoseconds"
    )
    assert any(line.startswith(warning) for line in done.stderr.splitlines()), done.stderr
    again = ok(server, "apply", "-f", str(model), "-f", str(instance))
    assert again.split() == [
        "devicemodel.devices.kubeedge.io/default/onvif-model",
        "unchanged",
        "device.devices.kubeedge.io/default/onvif-device-01",
        "unchanged",
    ]


def test_apply_from_stdin(server: EdgeProcess) -> None:
    """``apply -f -`` reads the manifests from standard input."""
    out = ok(server, "apply", "-f", "-", stdin=thermo("stdin"))
    assert out.splitlines() == [
        "devicemodel.devices.kubeedge.io/stdin/thermo-model created",
        "device.devices.kubeedge.io/stdin/thermo-1 created",
    ]


def test_apply_invalid_prints_every_issue(server: EdgeProcess, tmp_path: Path) -> None:
    """An invalid file prints each issue with its file, document and path, and exits 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        thermo("bad")
        .replace("type: INT", "type: NUMBER")
        .replace("name: thermo-1", "name: Thermo_1")
    )
    lines = failed(server, "apply", "-f", str(bad))
    assert lines[0] == "error: 2 errors; nothing was applied"
    assert len(lines) == 3
    model_issue = f"  {bad}: doc 0 DeviceModel bad/thermo-model: spec.properties[1].type: "
    device_issue = f"  {bad}: doc 1 Device bad/Thermo_1: metadata.name: "
    assert any(line.startswith(model_issue) for line in lines)
    assert any(line.startswith(device_issue) for line in lines)
    assert cli(server, "get", "devicemodels", "-n", "bad").stdout == ""


def test_apply_directory_names_the_file_of_an_issue(server: EdgeProcess) -> None:
    """A directory goes in one request; KubeEdge's mqtt sample typo is traced to its file."""
    lines = failed(server, "apply", "-f", str(samples()))
    assert lines[0] == "error: 1 error; nothing was applied"
    assert lines[1].startswith(
        f"  {samples() / 'mqttdevice-instance.yaml'}: doc 0 Device default/beta1-device: "
        "spec.properties[0].name: property 'temperature' is not in DeviceModel"
    )
    assert "did you mean 'temperture'?" in lines[1]


# -- get, describe, delete ---------------------------------------------------------------------


def test_get_prints_tables_json_and_yaml(server: EdgeProcess) -> None:
    """``get`` prints aligned tables by default, and the objects with -o json / -o yaml."""
    ok(server, "apply", "-f", "-", stdin=thermo("get"))
    table = ok(server, "get", "devices", "-n", "get").splitlines()
    assert table[0].split() == [
        "NAME",
        "MODEL",
        "PROTOCOL",
        "NODE",
        "STATE",
        "PROPERTIES",
        "LAST-ONLINE",
    ]
    assert table[1].split() == [
        "thermo-1",
        "thermo-model",
        "modbus",
        "edge-a",
        "unknown",
        "2",
        "<none>",
    ]
    assert table[0].index("MODEL") == table[1].index("thermo-model")  # aligned
    everywhere = ok(server, "get", "dm", "-A").splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["get", "thermo-model"] for line in everywhere)
    device = json.loads(ok(server, "get", "device", "thermo-1", "-n", "get", "-o", "json"))
    assert device["kind"] == "Device"
    assert device["status"]["state"] == "unknown"
    listed = yaml.safe_load(ok(server, "get", "devices", "-n", "get", "-o", "yaml"))
    assert listed["kind"] == "DeviceList"
    assert [d["metadata"]["name"] for d in listed["items"]] == ["thermo-1"]
    empty = cli(server, "get", "devices", "-n", "nothing-here")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert empty.stderr == "No devices found in namespace nothing-here.\n"
    assert failed(server, "get", "device", "ghost", "-n", "get") == [
        'error: devices.devices.kubeedge.io "ghost" not found in namespace "get"'
    ]


def test_describe_device_and_model(server: EdgeProcess) -> None:
    """``describe`` shows the spec summary and each property's desired and reported values."""
    ok(server, "apply", "-f", "-", stdin=thermo("desc"))
    report(server, "desc", "thermo-1", temperature="22.5")
    text = ok(server, "describe", "device", "thermo-1", "-n", "desc")
    fields = dict(
        line.split(":", 1) for line in text.splitlines() if line and not line.startswith(" ")
    )
    assert fields["Name"].strip() == "thermo-1"
    assert fields["Model"].strip() == "thermo-model"
    assert fields["Protocol"].strip() == "modbus"
    assert fields["State"].strip() == "unknown"
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert rows["NAME"][:4] == ["NAME", "TYPE", "ACCESS", "DESIRED"]
    assert rows["setpoint"][:4] == ["setpoint", "INT", "ReadWrite", "21"]
    assert rows["temperature"][:4] == ["temperature", "FLOAT", "ReadOnly", "<none>"]
    assert "22.5" in rows["temperature"]
    assert rows["temperature"][-2:] == ["2s", "default"]  # collectCycle, reportCycle
    model = ok(server, "describe", "devicemodel", "thermo-model", "-n", "desc")
    assert "Used By:        thermo-1" in model
    assert "Celsius" in model


def test_delete_device_and_model(server: EdgeProcess) -> None:
    """``delete`` prints what it deleted; a model in use and a missing object are clear errors."""
    ok(server, "apply", "-f", "-", stdin=thermo("del"))
    lines = failed(server, "delete", "devicemodel", "thermo-model", "-n", "del")
    assert lines == ["error: device model del/thermo-model is used by 1 device(s): del/thermo-1"]
    out = ok(server, "delete", "device", "thermo-1", "-n", "del")
    assert out == 'device.devices.kubeedge.io "thermo-1" deleted\n'
    out = ok(server, "delete", "devicemodel", "thermo-model", "-n", "del")
    assert out == 'devicemodel.devices.kubeedge.io "thermo-model" deleted\n'
    assert failed(server, "delete", "device", "thermo-1", "-n", "del") == [
        'error: devices.devices.kubeedge.io "thermo-1" not found in namespace "del"'
    ]


def test_cli_writes_pass_the_forgery_check_that_a_bare_request_fails(server: EdgeProcess) -> None:
    """The CLI's DELETE (no body) passes by its X-Twinplane-Client; the same without it is 403."""
    ok(server, "apply", "-f", "-", stdin=thermo("csrf"))
    path = "/api/v1/namespaces/csrf/devices/thermo-1"
    bare = urllib.request.Request(server.url + path, method="DELETE")  # noqa: S310 - our server
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)  # noqa: S310
    assert refused.value.code == 403
    assert CLIENT_HEADER in json.load(refused.value)["message"]
    out = ok(server, "delete", "device", "thermo-1", "-n", "csrf")
    assert out == 'device.devices.kubeedge.io "thermo-1" deleted\n'


def test_apply_counts_errors_the_server_did_not_list(server: EdgeProcess) -> None:
    """Past 100 causes the server counts the rest; the CLI's summary counts them all."""
    models = "---\n".join(
        f"apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\n"
        f"metadata: {{name: m{i}, namespace: many}}\n"
        "spec: {protocol: modbus, properties: [{name: p, type: NOPE, accessMode: ReadWrite}]}\n"
        for i in range(150)
    )
    lines = failed(server, "apply", "-f", "-", stdin=models)
    assert lines[0] == "error: 150 errors; nothing was applied"
    assert lines[-1].endswith("and 50 more not listed")
    assert len(lines) == 1 + 100 + 1


def test_get_and_delete_mappers(server: EdgeProcess) -> None:
    """``get mappers`` lists, ``get mapper NAME`` shows one, ``delete mapper`` forgets it."""
    ok(server, "apply", "-f", "-", stdin=thermo("mappers"))
    request = register_request("cli-mapper", "modbus", "/run/cli-mapper.sock", with_data=False)
    with grpc.insecure_channel(server.target) as channel:
        api_pb2_grpc.DeviceManagerServiceStub(channel).MapperRegister(request, timeout=5)
    table = ok(server, "get", "mappers").splitlines()
    assert table[0].split() == [
        "NAME",
        "PROTOCOL",
        "ADDRESS",
        "VERSION",
        "STATE",
        "DEVICES",
        "AGE",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["cli-mapper"][:5] == [
        "cli-mapper",
        "modbus",
        "/run/cli-mapper.sock",
        "v1.19.0",
        "ok",
    ]
    assert int(rows["cli-mapper"][5]) >= 1  # mappers/thermo-1 at least
    shown = json.loads(ok(server, "get", "mapper", "cli-mapper", "-o", "json"))
    assert shown["name"] == "cli-mapper"
    assert "mappers/thermo-1" in shown["devices"]
    assert ok(server, "delete", "mapper", "cli-mapper") == 'mapper "cli-mapper" deleted\n'
    assert failed(server, "delete", "mapper", "cli-mapper") == [
        'error: mapper "cli-mapper" not found'
    ]
    assert failed(server, "get", "mapper", "cli-mapper") == ['error: mapper "cli-mapper" not found']
    listed = json.loads(ok(server, "get", "mappers", "-o", "json"))
    assert "cli-mapper" not in [m["name"] for m in listed["items"]]
    assert failed(server, "describe", "mapper", "x") == [
        "error: describe takes a device or a devicemodel; for a mapper: twinplane get mapper x"
        " -o yaml"
    ]


# -- twins -------------------------------------------------------------------------------------


def test_twin_set_prints_the_delta_and_twin_get_the_table(server: EdgeProcess) -> None:
    """``twin set`` prints the delta; ``twin get`` shows desired, reported and versions."""
    ok(server, "apply", "-f", "-", stdin=thermo("twin"))
    report(server, "twin", "thermo-1", temperature="19.5", setpoint="21")
    out = ok(server, "twin", "set", "thermo-1", "setpoint=25", "-n", "twin").splitlines()
    assert out[0] == "twin twin/thermo-1: desired setpoint=25 (1 changed)"
    assert out[1] == "delta (desired values the device does not report yet):"
    assert out[2].split() == ["PROPERTY", "DESIRED", "REPORTED", "REPORTED-AGO"]
    assert out[3].split()[:3] == ["setpoint", "25", "21"]
    table = ok(server, "twin", "get", "thermo-1", "-n", "twin").splitlines()
    assert table[0].split() == [
        "PROPERTY",
        "TYPE",
        "DESIRED",
        "REPORTED",
        "REPORTED-AT",
        "VERSIONS",
        "WRITE-ERROR",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["setpoint"][:4] == ["setpoint", "INT", "25", "21"]
    assert rows["setpoint"][-3:] == ["d=0/2", "r=0/1", "<none>"]
    assert rows["temperature"][:4] == ["temperature", "FLOAT", "<none>", "19.5"]
    report(server, "twin", "thermo-1", setpoint="25")
    again = ok(server, "twin", "set", "thermo-1", "setpoint=25", "-n", "twin")
    assert again.splitlines()[-1] == "no delta: the device reports every desired value"
    data = json.loads(ok(server, "twin", "get", "thermo-1", "-n", "twin", "-o", "json"))
    assert data["twins"]["setpoint"]["reported"]["value"] == "25"


def test_twin_set_errors(server: EdgeProcess) -> None:
    """A wrong value type, an unknown property or device, a bad assignment: one-line errors."""
    ok(server, "apply", "-f", "-", stdin=thermo("twinerr"))
    lines = failed(server, "twin", "set", "thermo-1", "setpoint=warm", "-n", "twinerr")
    assert lines == ["error: desired.setpoint: 'warm' is not a INT value (the type of 'setpoint')"]
    lines = failed(server, "twin", "set", "thermo-1", "colour=red", "setpoint=x", "-n", "twinerr")
    assert lines[0].startswith("error: desired.colour: device twinerr/thermo-1 has no property")
    assert lines[1:] == [
        "  desired.colour: device twinerr/thermo-1 has no property 'colour' "
        "(it has: setpoint, temperature)",
        "  desired.setpoint: 'x' is not a INT value (the type of 'setpoint')",
    ]
    assert failed(server, "twin", "set", "ghost", "a=1", "-n", "twinerr") == [
        'error: devices.devices.kubeedge.io "ghost" not found in namespace "twinerr"'
    ]
    assert failed(server, "twin", "set", "thermo-1", "setpoint", "-n", "twinerr") == [
        "error: 'setpoint' is not PROPERTY=VALUE (or PROPERTY- to clear it)"
    ]


# -- without a server, usage -------------------------------------------------------------------


def test_no_server_is_one_clear_line() -> None:
    """With nothing listening, every client command says to start twinplane edge."""
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("get", "devices"), ("twin", "get", "x"), ("apply", "-f", "-")):
        done = subprocess.run(  # noqa: S603 - our own command
            [sys.executable, "-m", "twinplane.cli", *args, "--server", url],
            input="kind: Device\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert done.stderr == (
            f"error: cannot reach {url} (connection refused): "
            f"is `twinplane edge` running at {url}?\n"
        )


def test_usage_errors_exit_2() -> None:
    """An unknown resource or a missing argument is a usage error (status 2)."""
    done = cli(None, "get", "widgets")
    assert done.returncode == 2
    assert "unknown resource 'widgets'" in done.stderr
    assert cli(None, "twin", "set", "x").returncode == 2
    assert cli(None, "edge", "--rest-addr", "nowhere").returncode == 2


def test_up_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    """``twinplane up`` checks its options before starting anything (exit 2)."""
    assert main(["up", "--rest-addr", "nowhere"]) == 2
    assert main(["up", "--properties", "81"]) == 2
    assert "--properties" in capsys.readouterr().err
